"""A process's share of each principal's budgets: one hold in Redis (a chunk) lent to many
model calls, so a call costs a Redis round trip only when the chunk runs out.

A chunk is held like a call's own hold (app/store/usage_ledger_redis.py RESERVE: within
every budget, leased), sized for CHUNK_CALLS calls but never more than a CHUNK_SHARE of a
budget, nor more than is left. Each call borrows from the current chunk what it holds (and is
capped at it); when it ends, what it did not use goes back to the chunk, and its usage is
recorded as spend (so until the chunk ends, used tokens count twice in Redis, as spend and in
the chunk: other processes see the budget fuller than it is, never emptier). A chunk that
cannot lend the next call is retired and ended once its calls are back; an idle one ends
after IDLE_SECONDS; one older than its lease's half takes no new calls (its calls end
before its lease does); one from yesterday lends nothing today.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.core.clock import utcnow
from app.store.usage_ledger import Budgets, Hold, periods

CHUNK_CALLS = 16
CHUNK_SHARE = 8  # at most 1/8 of a budget in one process's chunk
IDLE_SECONDS = 2.0


@dataclass(slots=True)
class Chunk:
    hold: Hold  # in Redis
    left: int  # neither lent nor used
    lent: int = 0  # borrowed by calls in flight
    taken_at: float = field(default_factory=time.monotonic)
    used_at: float = field(default_factory=time.monotonic)


def chunk_size(budgets: Budgets, amount: int) -> int:
    """What to ask Redis for when a call needs ``amount``."""
    size = amount * CHUNK_CALLS
    for limit in (budgets.per_day, budgets.per_month):
        if limit:
            size = min(size, limit // CHUNK_SHARE)
    return max(size, amount)


class ChunkPool:
    def __init__(self, *, lease_seconds: float) -> None:
        self._max_age = lease_seconds / 2
        self._current: dict[str, Chunk] = {}  # principal -> the chunk new calls borrow from
        self._chunks: dict[str, Chunk] = {}  # hold id -> every chunk not yet ended
        self._retired: set[str] = set()

    def lend(self, principal: str, amount: int, least: int, *, fresh: bool = False) -> Hold | None:
        """A call's hold out of the principal's current chunk, or None (none, or it cannot
        lend all of ``amount``: it is retired and a new chunk is needed). Only a ``fresh``
        chunk, held just now, lends less (at least ``least``): then the budget itself is
        what limits the call."""
        chunk = self._current.get(principal)
        if chunk is None:
            return None
        now = time.monotonic()
        stale = now - chunk.taken_at > self._max_age or periods(chunk.hold.at) != periods(utcnow())
        if stale or chunk.left < (least if fresh else amount):
            self._retire(principal)
            return None
        take = min(amount, chunk.left)
        chunk.left -= take
        chunk.lent += take
        chunk.used_at = now
        return Hold(take, chunk.hold.at, principal, chunk.hold.id)

    def add(self, principal: str, hold: Hold) -> None:
        """A chunk just held in Redis becomes the principal's current one."""
        if principal in self._current:
            self._retire(principal)
        chunk = Chunk(hold=hold, left=hold.tokens)
        self._current[principal] = self._chunks[hold.id] = chunk

    def give_back(self, hold: Hold, used: int) -> None:
        """A call ended: what it borrowed and did not use is the chunk's again."""
        chunk = self._chunks.get(hold.id)
        if chunk is None:
            return
        chunk.lent -= hold.tokens
        chunk.left += max(hold.tokens - used, 0)

    def ended(self, *, everything: bool = False) -> list[Hold]:
        """Chunks to end in Redis now: retired ones whose calls are back, idle ones, or
        (shutting down) every one whose calls are back."""
        now = time.monotonic()
        done = []
        for hold_id, chunk in list(self._chunks.items()):
            idle = now - chunk.used_at > IDLE_SECONDS
            if chunk.lent == 0 and (everything or idle or hold_id in self._retired):
                done.append(chunk.hold)
                del self._chunks[hold_id]
                self._retired.discard(hold_id)
                if self._current.get(chunk.hold.principal) is chunk:
                    del self._current[chunk.hold.principal]
        return done

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def _retire(self, principal: str) -> None:
        chunk = self._current.pop(principal, None)
        if chunk is not None:
            self._retired.add(chunk.hold.id)

"""In-memory session store (one process): expiry follows ``time.monotonic``, checked on access.

The run lock and the queue of tickets mirror the Redis backend (``session_redis``); a ticket's
TTL is a monotonic deadline its waiter pushes forward on every poll.
"""

from __future__ import annotations

import builtins
import time
from collections import deque
from dataclasses import dataclass
from itertools import count, islice

from app.core.clock import utcnow
from app.llm.types import ChatMessage
from app.store.sessions import SessionNotFoundError, SessionRecord, new_session_id

_SWEEP_EVERY = 256


@dataclass(slots=True)
class _Entry:
    record: SessionRecord
    messages: deque[str]  # JSON, like Redis: callers never share mutable objects with the store
    deadline: float  # time.monotonic()
    seq: int  # creation order, to break created_at ties


@dataclass(slots=True)
class _Ticket:
    order: tuple[int, int]  # (0 for an interrupting run, 1 for an enqueued one; arrival)
    deadline: float  # time.monotonic(); pushed forward by each poll


class MemorySessionStore:
    """Single-process backend."""

    def __init__(self, *, max_messages: int, ttl_seconds: float) -> None:
        self._max_messages = max_messages
        self._ttl = ttl_seconds
        self._sessions: dict[str, _Entry] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._queues: dict[str, dict[str, _Ticket]] = {}
        self._arrivals = count()
        self._created = 0

    def _live(self, session_id: str) -> _Entry | None:
        entry = self._sessions.get(session_id)
        if entry is not None and entry.deadline <= time.monotonic():
            self._drop(session_id)
            return None
        return entry

    def _drop(self, session_id: str) -> _Entry | None:
        entry = self._sessions.pop(session_id, None)
        self._locks.pop(session_id, None)
        if entry is not None:
            ids = self._by_owner.get(entry.record.owner)
            if ids is not None:
                ids.discard(session_id)
                if not ids:
                    del self._by_owner[entry.record.owner]
        return entry

    def _touch(self, entry: _Entry) -> None:
        entry.deadline = time.monotonic() + self._ttl

    def _sweep(self) -> None:
        # Sessions nobody reads again (and queues nobody polls) would otherwise stay forever.
        now = time.monotonic()
        for session_id in [sid for sid, e in self._sessions.items() if e.deadline <= now]:
            self._drop(session_id)
        for session_id in [sid for sid, (_, until) in self._locks.items() if until <= now]:
            del self._locks[session_id]
        for session_id, queue in list(self._queues.items()):
            if all(t.deadline <= now for t in queue.values()):
                del self._queues[session_id]

    def _new(self, owner: str, agent: str, session_id: str | None = None) -> SessionRecord:
        self._created += 1
        if self._created % _SWEEP_EVERY == 0:
            self._sweep()
        record = SessionRecord(id=session_id or new_session_id(), owner=owner, agent=agent)
        entry = _Entry(record, deque(maxlen=self._max_messages), 0.0, self._created)
        self._touch(entry)
        self._sessions[record.id] = entry
        self._by_owner.setdefault(owner, set()).add(record.id)
        return record

    async def create(self, *, owner: str, agent: str) -> SessionRecord:
        return self._new(owner, agent).model_copy()

    async def create_held(
        self, *, owner: str, agent: str, run_id: str, ttl_seconds: int
    ) -> SessionRecord:
        record = self._new(owner, agent)
        self._locks[record.id] = (run_id, time.monotonic() + ttl_seconds)
        return record.model_copy()

    async def create_with_id(
        self, *, session_id: str, owner: str, agent: str
    ) -> SessionRecord | None:
        if self._live(session_id) is not None:
            return None
        return self._new(owner, agent, session_id).model_copy()

    async def get(self, session_id: str) -> SessionRecord | None:
        entry = self._live(session_id)
        if entry is None:
            return None
        self._touch(entry)
        return entry.record.model_copy(update={"message_count": len(entry.messages)})

    async def list(
        self, *, owner: str, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        live = [e for sid in list(self._by_owner.get(owner, ())) if (e := self._live(sid))]
        live.sort(key=lambda e: (e.record.created_at, e.seq), reverse=True)
        page = live[offset : offset + limit] if limit > 0 else []
        items = [e.record.model_copy(update={"message_count": len(e.messages)}) for e in page]
        return items, len(live)

    async def delete(self, session_id: str) -> bool:
        found = self._live(session_id) is not None
        self._drop(session_id)
        return found

    async def messages(
        self, session_id: str, *, limit: int, offset: int
    ) -> builtins.list[ChatMessage]:
        entry = self._live(session_id)
        if entry is None or limit <= 0:
            return []
        window = islice(entry.messages, offset, offset + limit)
        return [ChatMessage.model_validate_json(raw) for raw in window]

    async def append(self, session_id: str, messages: builtins.list[ChatMessage]) -> None:
        entry = self._live(session_id)
        if entry is None:
            raise SessionNotFoundError(session_id)
        entry.messages.extend(m.model_dump_json(exclude_none=True) for m in messages)
        entry.record = entry.record.model_copy(update={"updated_at": utcnow()})
        self._touch(entry)

    # -- run lock and queue ------------------------------------------------------------------

    def _holder(self, session_id: str, now: float) -> str | None:
        held = self._locks.get(session_id)
        return held[0] if held is not None and held[1] > now else None

    def _live_head(self, session_id: str, now: float) -> str | None:
        """The first live ticket's run id; dead tickets in front of it are dropped."""
        queue = self._queues.get(session_id)
        if queue is None:
            return None
        for run_id, ticket in sorted(queue.items(), key=lambda item: item[1].order):
            if ticket.deadline > now:
                return run_id
            del queue[run_id]
        del self._queues[session_id]
        return None

    async def acquire_run_lock(self, session_id: str, *, run_id: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        busy = self._holder(session_id, now) is not None
        if busy or self._live_head(session_id, now) is not None:
            return False
        self._locks[session_id] = (run_id, now + ttl_seconds)
        return True

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        held = self._locks.get(session_id)
        if held is not None and held[0] == run_id:
            del self._locks[session_id]

    async def run_lock_holder(self, session_id: str) -> str | None:
        return self._holder(session_id, time.monotonic())

    async def take_turn(
        self,
        session_id: str,
        *,
        run_id: str,
        ttl_seconds: int,
        ahead: bool,
        ticket_seconds: float,
    ) -> bool:
        now = time.monotonic()
        queue = self._queues.setdefault(session_id, {})
        ticket = queue.get(run_id)
        if ticket is None:
            queue[run_id] = _Ticket((0 if ahead else 1, next(self._arrivals)), now + ticket_seconds)
        else:
            ticket.deadline = now + ticket_seconds
        if self._holder(session_id, now) is not None:
            return False
        if self._live_head(session_id, now) != run_id:
            return False
        del queue[run_id]
        if not queue:
            del self._queues[session_id]
        self._locks[session_id] = (run_id, now + ttl_seconds)
        return True

    async def abandon_turn(self, session_id: str, *, run_id: str) -> None:
        queue = self._queues.get(session_id)
        if queue is not None:
            queue.pop(run_id, None)
            if not queue:
                del self._queues[session_id]
        await self.release_run_lock(session_id, run_id=run_id)

    async def waiting(self, session_id: str) -> builtins.list[str]:
        now = time.monotonic()
        queue = self._queues.get(session_id, {})
        live = sorted((t.order, rid) for rid, t in queue.items() if t.deadline > now)
        return [run_id for _, run_id in live]

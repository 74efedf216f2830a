"""Tasks in memory, for one process without Redis (`make run`, tests of the embedded mode).

Same contract as the Redis backend; a delivery is never lost while the process lives, and
nothing survives a restart (that needs REDIS_URL). Fairness as there: each owner's new tasks
wait in a queue of their own and ``dequeue`` takes from the owners in turn; deliveries given
back by a stopping worker go first. A finished task (record, events, idempotency key) is
dropped TASK_RETENTION_SECONDS after it finished, so a long-lived process does not keep
every task it ever ran.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.core.clock import utcnow
from app.tasks.backend import (
    IDEMPOTENCY_TTL_SECONDS,
    Delivery,
    IdempotencyKey,
    StoredEvent,
    Submission,
)
from app.tasks.records import TERMINAL_STATUSES, StatusSet, TaskRecord, TaskStatus, TaskUpdate


@dataclass(frozen=True, slots=True)
class _KeyUse:
    task_id: str
    fingerprint: str
    expires: float  # time.monotonic()


class MemoryTaskBackend:
    def __init__(self, *, events_max: int, retention_seconds: float = 7 * 86_400) -> None:
        self._retention = retention_seconds
        self._expiries: deque[tuple[float, str]] = deque()  # (monotonic, id), by finish time
        self._key_of: dict[str, str] = {}  # task id -> its idempotency key, to drop both
        self._records: dict[str, TaskRecord] = {}
        self._idempotency: dict[str, _KeyUse] = {}
        self._active: dict[str, set[str]] = {}  # owner -> unfinished task ids
        self._waiting: dict[str, deque[str]] = {}  # owner -> task ids not yet delivered
        self._owners: deque[str] = deque()  # owners with waiting tasks, in turn
        self._released: deque[str] = deque()  # given back by a stopping worker: first
        self._work_added = asyncio.Event()
        self._in_flight: dict[str, tuple[Delivery, float]] = {}  # id -> (delivery, last beat)
        self._ids = itertools.count(1)
        self._events: dict[str, list[StoredEvent]] = {}
        self._seq: dict[str, int] = {}
        self._events_max = events_max
        self._event_added: dict[str, asyncio.Event] = {}
        self._listeners: list[Callable[[str], Awaitable[None]]] = []

    # -- records ----------------------------------------------------------------------------
    async def submit(
        self, record: TaskRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
    ) -> Submission:
        self._drop_expired()
        key = None
        if idempotency is not None:
            digest = hashlib.sha256(idempotency.key.encode()).hexdigest()
            key = f"{record.owner}:{digest}"
            used = self._idempotency.get(key)
            if used and used.expires > time.monotonic() and used.task_id in self._records:
                earlier = self._records[used.task_id]
                if used.fingerprint != idempotency.fingerprint:
                    return Submission(earlier, "key_reused")
                return Submission(earlier, "replayed")
        active = self._active.setdefault(record.owner, set())
        if 0 < max_active <= len(active):
            return Submission(record, "over_cap")
        if key is not None and idempotency is not None:
            self._idempotency[key] = _KeyUse(
                record.id, idempotency.fingerprint, time.monotonic() + IDEMPOTENCY_TTL_SECONDS
            )
            self._key_of[record.id] = key
        self._records[record.id] = record
        active.add(record.id)
        waiting = self._waiting.setdefault(record.owner, deque())
        waiting.append(record.id)
        if len(waiting) == 1:
            self._owners.append(record.owner)
        self._work_added.set()
        return Submission(record, "created")

    async def get(self, task_id: str) -> TaskRecord | None:
        self._drop_expired()
        return self._records.get(task_id)

    async def list(
        self, *, owner: str, status: TaskStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[TaskRecord], int]:
        self._drop_expired()
        records = [
            r
            for r in self._records.values()
            if r.owner == owner and (status is None or r.status == status)
        ]
        records.sort(key=lambda r: r.submitted_at, reverse=True)
        return records[offset : offset + limit], len(records)

    async def update(self, task_id: str, changes: TaskUpdate) -> None:
        record = self._records.get(task_id)
        if record is not None:
            self._records[task_id] = record.model_copy(update={"updated_at": utcnow(), **changes})

    async def transition(
        self,
        task_id: str,
        *,
        to: TaskStatus,
        allowed_from: StatusSet,
        changes: TaskUpdate | None = None,
    ) -> bool:
        record = self._records.get(task_id)
        if record is None or record.status not in allowed_from:
            return False
        update = {"updated_at": utcnow(), **(changes or {}), "status": to}
        self._records[task_id] = record.model_copy(update=update)
        if to in TERMINAL_STATUSES:
            self._active.get(record.owner, set()).discard(task_id)
            self._expiries.append((time.monotonic() + self._retention, task_id))
        return True

    def _drop_expired(self) -> None:
        """Forget tasks finished more than the retention ago (one constant retention, so
        the deque is in expiry order)."""
        now = time.monotonic()
        while self._expiries and self._expiries[0][0] <= now:
            _, task_id = self._expiries.popleft()
            record = self._records.get(task_id)
            if record is None or record.status not in TERMINAL_STATUSES:
                continue
            del self._records[task_id]
            self._events.pop(task_id, None)
            self._seq.pop(task_id, None)
            self._event_added.pop(task_id, None)
            key = self._key_of.pop(task_id, None)
            if key is not None and (use := self._idempotency.get(key)) and use.task_id == task_id:
                del self._idempotency[key]

    async def update_if(self, task_id: str, *, status_in: StatusSet, changes: TaskUpdate) -> bool:
        record = self._records.get(task_id)
        if record is None or record.status not in status_in:
            return False
        await self.update(task_id, changes)
        return True

    # -- queue ------------------------------------------------------------------------------
    async def dequeue(self, *, consumer: str, count: int, block_ms: int) -> builtins.list[Delivery]:
        if not (self._released or self._owners):
            self._work_added.clear()
            try:
                await asyncio.wait_for(self._work_added.wait(), block_ms / 1000)
            except TimeoutError:
                return []
        batch: builtins.list[Delivery] = []
        while len(batch) < count and (task_id := self._next_task()) is not None:
            delivery = Delivery(id=str(next(self._ids)), task_id=task_id)
            self._in_flight[delivery.id] = (delivery, time.monotonic())
            batch.append(delivery)
        return batch

    def _next_task(self) -> str | None:
        """A released delivery first, else the next owner's oldest waiting task."""
        if self._released:
            return self._released.popleft()
        while self._owners:
            owner = self._owners.popleft()
            waiting = self._waiting.get(owner)
            if not waiting:
                continue
            task_id = waiting.popleft()
            if waiting:
                self._owners.append(owner)
            else:
                del self._waiting[owner]
            return task_id
        return None

    async def reclaim(
        self, *, consumer: str, min_idle_ms: int, count: int
    ) -> builtins.list[Delivery]:
        now = time.monotonic()
        stale = [d for d, beat in self._in_flight.values() if now - beat >= min_idle_ms / 1000]
        for delivery in stale[:count]:
            self._in_flight[delivery.id] = (delivery, now)
        return stale[:count]

    async def heartbeat(self, *, consumer: str, deliveries: builtins.list[Delivery]) -> None:
        now = time.monotonic()
        for delivery in deliveries:
            if delivery.id in self._in_flight:
                self._in_flight[delivery.id] = (delivery, now)

    async def ack(self, delivery: Delivery) -> None:
        self._in_flight.pop(delivery.id, None)

    async def release(self, delivery: Delivery) -> None:
        self._in_flight.pop(delivery.id, None)
        self._released.append(delivery.task_id)
        self._work_added.set()

    async def queue_depth(self) -> int:
        waiting = sum(len(tasks) for tasks in self._waiting.values())
        return waiting + len(self._released) + len(self._in_flight)

    # -- events -----------------------------------------------------------------------------
    async def append_event(self, task_id: str, event_json: str) -> int:
        seq = self._seq.get(task_id, 0) + 1
        self._seq[task_id] = seq
        events = self._events.setdefault(task_id, [])
        events.append(StoredEvent(seq=seq, json=event_json))
        if len(events) > self._events_max:
            del events[: len(events) - self._events_max]
        self._event_added.pop(task_id, asyncio.Event()).set()
        return seq

    async def read_events(
        self, task_id: str, *, after: int, limit: int
    ) -> builtins.list[StoredEvent]:
        return [e for e in self._events.get(task_id, []) if e.seq > after][:limit]

    async def wait_events(
        self, task_id: str, *, after: int, wait_seconds: float
    ) -> builtins.list[StoredEvent]:
        found = await self.read_events(task_id, after=after, limit=500)
        if found:
            return found
        added = self._event_added.setdefault(task_id, asyncio.Event())
        try:
            await asyncio.wait_for(added.wait(), wait_seconds)
        except TimeoutError:
            return []
        return await self.read_events(task_id, after=after, limit=500)

    async def first_retained_seq(self, task_id: str) -> int | None:
        events = self._events.get(task_id)
        return events[0].seq if events else None

    # -- control nudges ---------------------------------------------------------------------
    async def nudge(self, task_id: str) -> None:
        for listener in list(self._listeners):
            await listener(task_id)

    async def listen(self, callback: Callable[[str], Awaitable[None]]) -> None:
        self._listeners.append(callback)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._listeners.remove(callback)

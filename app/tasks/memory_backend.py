"""The task queue in memory, for one process without Redis (`make run`, tests of the
embedded mode), over the memory run store.

Same contract as the Redis backend; a delivery is never lost while the process lives, and
nothing survives a restart (that needs REDIS_URL). Fairness as there: each owner's new tasks
wait in a queue of their own and ``dequeue`` takes from the owners in turn; deliveries given
back by a stopping worker go first. A finished task's idempotency key is dropped with its
record, when the store forgets it (TASK_RETENTION_SECONDS after it finished).
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

from app.store.run_records import RunRecord
from app.store.run_store_memory import MemoryRunStore
from app.tasks.backend import IDEMPOTENCY_TTL_SECONDS, Delivery, IdempotencyKey, Submission


@dataclass(frozen=True, slots=True)
class _KeyUse:
    task_id: str
    fingerprint: str
    expires: float  # time.monotonic()


class MemoryTaskBackend:
    def __init__(self, store: MemoryRunStore) -> None:
        self.store = store
        store.on_forget(self._forget_key)
        self._key_of: dict[str, str] = {}  # task id -> its idempotency key, to drop both
        self._idempotency: dict[str, _KeyUse] = {}
        self._active: dict[str, set[str]] = {}  # owner -> unfinished task ids
        self._waiting: dict[str, deque[str]] = {}  # owner -> task ids not yet delivered
        self._owners: deque[str] = deque()  # owners with waiting tasks, in turn
        self._released: deque[str] = deque()  # given back by a stopping worker: first
        self._work_added = asyncio.Event()
        self._interrupted = False  # the worker is stopping: take nothing more
        self._in_flight: dict[str, tuple[Delivery, float]] = {}  # id -> (delivery, last beat)
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[str], Awaitable[None]]] = []

    async def submit(
        self, record: RunRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
    ) -> Submission:
        key = None
        if idempotency is not None:
            digest = hashlib.sha256(idempotency.key.encode()).hexdigest()
            key = f"{record.owner}:{digest}"
            used = self._idempotency.get(key)
            earlier = await self.store.get(used.task_id) if used else None
            if used and used.expires > time.monotonic() and earlier is not None:
                if used.fingerprint != idempotency.fingerprint:
                    return Submission(earlier, "key_reused")
                return Submission(earlier, "replayed")
        active = self._active.setdefault(record.owner, set())
        if 0 < max_active <= len(active):  # drop the finished (or forgotten) ones first
            active.difference_update([i for i in active if not self.store.unfinished(i)])
        if 0 < max_active <= len(active):
            return Submission(record, "over_cap")
        if key is not None and idempotency is not None:
            self._idempotency[key] = _KeyUse(
                record.id, idempotency.fingerprint, time.monotonic() + IDEMPOTENCY_TTL_SECONDS
            )
            self._key_of[record.id] = key
        self.store.put(record)
        active.add(record.id)
        waiting = self._waiting.setdefault(record.owner, deque())
        waiting.append(record.id)
        if len(waiting) == 1:
            self._owners.append(record.owner)
        self._work_added.set()
        return Submission(record, "created")

    def _forget_key(self, task_id: str) -> None:
        key = self._key_of.pop(task_id, None)
        if key is not None and (use := self._idempotency.get(key)) and use.task_id == task_id:
            del self._idempotency[key]

    # -- queue ------------------------------------------------------------------------------
    async def dequeue(self, *, consumer: str, count: int, block_ms: int) -> builtins.list[Delivery]:
        if not (self._released or self._owners):
            self._work_added.clear()
            try:
                await asyncio.wait_for(self._work_added.wait(), block_ms / 1000)
            except TimeoutError:
                return []
        if self._interrupted:
            return []
        batch: builtins.list[Delivery] = []
        while len(batch) < count and (task_id := self._next_task()) is not None:
            delivery = Delivery(id=str(next(self._ids)), task_id=task_id)
            self._in_flight[delivery.id] = (delivery, time.monotonic())
            batch.append(delivery)
        return batch

    async def interrupt_dequeue(self) -> None:
        self._interrupted = True
        self._work_added.set()

    async def aclose(self) -> None:
        """Nothing to release."""

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

"""Run records and event logs in memory, for one process without Redis (`make run`).

Same contract as the Redis store; nothing survives a restart. A finished run (record and
events) is dropped its kind's retention after it finished (RUN_RETENTION_SECONDS for a
foreground run, TASK_RETENTION_SECONDS for a task), so a long-lived process does not keep every
run it ever served; and at most ``max_finished`` finished runs (and as many tasks) are kept
at all, the first to have finished going first: under load an hour of runs is gigabytes
(about 12 KB a 20-token run, hundreds a second), which Redis would hold and a process cannot.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import heapq
import time
from collections.abc import Callable, Sequence

from app.core.clock import utcnow
from app.store.run_records import (
    TERMINAL_STATUSES,
    RunKind,
    RunRecord,
    RunStatus,
    RunUpdate,
    StatusSet,
)
from app.store.run_store import RunBatch, RunQuery, StatusObserver, StoredEvent, tell_observer

WAIT_BATCH = 500


class MemoryRunStore:
    def __init__(
        self,
        *,
        events_max: int,
        retention_seconds: float = 7 * 86_400,
        run_retention_seconds: float = 3_600,
        max_finished: int = 10_000,
    ) -> None:
        self._retention = {"task": retention_seconds, "run": run_retention_seconds}
        self._max_finished = max_finished
        self._events_max = events_max
        self._records: dict[str, RunRecord] = {}
        # Per kind, a heap of (monotonic deadline, id): one retention per kind, so within a
        # heap the first to expire is the first that finished (the one a cap drops first).
        self._expiries: dict[RunKind, list[tuple[float, str]]] = {"run": [], "task": []}
        self._events: dict[str, builtins.list[StoredEvent]] = {}
        self._seq: dict[str, int] = {}
        self._event_added: dict[str, asyncio.Event] = {}
        self._forgotten: list[Callable[[str], None]] = []
        self.observer: StatusObserver | None = None

    def on_forget(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` when a finished run is dropped (the task backend drops
        the run's idempotency key with it)."""
        self._forgotten.append(callback)

    # -- records ----------------------------------------------------------------------------
    def put(self, record: RunRecord) -> None:
        """Store a record as it is (the task backend's submit)."""
        self._drop_expired()
        self._records[record.id] = record

    def unfinished(self, run_id: str) -> bool:
        record = self._records.get(run_id)
        return record is not None and not record.finished

    async def create(
        self, record: RunRecord, events: builtins.list[StoredEvent] | None = None
    ) -> None:
        self.put(record)
        if events:
            await self.append_events(record.id, events, kind=record.kind)

    async def get(self, run_id: str) -> RunRecord | None:
        self._drop_expired()
        return self._records.get(run_id)

    async def list(
        self, query: RunQuery, *, limit: int, offset: int
    ) -> tuple[builtins.list[RunRecord], int]:
        self._drop_expired()
        records = [
            r
            for r in self._records.values()
            if r.owner == query.owner
            and (query.kind is None or r.kind == query.kind)
            and (query.status is None or r.status == query.status)
            and (query.session_id is None or r.session_id == query.session_id)
        ]
        records.sort(key=lambda r: r.submitted_at, reverse=True)
        return records[offset : offset + limit], len(records)

    async def update(self, run_id: str, changes: RunUpdate) -> None:
        record = self._records.get(run_id)
        if record is not None:
            self._records[run_id] = record.model_copy(update={"updated_at": utcnow(), **changes})

    async def transition(
        self,
        run_id: str,
        *,
        to: RunStatus,
        allowed_from: StatusSet,
        changes: RunUpdate | None = None,
    ) -> bool:
        record = self._records.get(run_id)
        if record is None or record.status not in allowed_from:
            return False
        update = {"updated_at": utcnow(), **(changes or {}), "status": to}
        self._records[run_id] = record.model_copy(update=update)
        if to in TERMINAL_STATUSES:
            deadline = time.monotonic() + self._retention[record.kind]
            heapq.heappush(self._expiries[record.kind], (deadline, run_id))
            self._drop(self._expiries[record.kind], keep=self._max_finished)
        await tell_observer(self.observer, run_id, to)
        return True

    async def update_if(self, run_id: str, *, status_in: StatusSet, changes: RunUpdate) -> bool:
        record = self._records.get(run_id)
        if record is None or record.status not in status_in:
            return False
        await self.update(run_id, changes)
        return True

    def _drop_expired(self) -> None:
        """Forget runs finished more than their retention ago."""
        for expiries in self._expiries.values():
            self._drop(expiries, keep=None)

    def _drop(self, expiries: builtins.list[tuple[float, str]], *, keep: int | None) -> None:
        """Forget the runs of ``expiries`` past their deadline and, with ``keep``, the ones
        that finished first until at most ``keep`` finished runs of this kind are left."""
        now = time.monotonic()
        while expiries and (expiries[0][0] <= now or (keep is not None and len(expiries) > keep)):
            _, run_id = heapq.heappop(expiries)
            record = self._records.get(run_id)
            if record is None or record.status not in TERMINAL_STATUSES:
                continue
            del self._records[run_id]
            self._events.pop(run_id, None)
            self._seq.pop(run_id, None)
            self._event_added.pop(run_id, None)
            for callback in self._forgotten:
                callback(run_id)

    # -- events -----------------------------------------------------------------------------
    def _store(self, run_id: str, event: StoredEvent) -> None:
        events = self._events.setdefault(run_id, [])
        events.append(event)
        if len(events) > self._events_max:
            del events[: len(events) - self._events_max]
        self._seq[run_id] = event.seq

    def _wake(self, run_id: str) -> None:
        added = self._event_added.pop(run_id, None)
        if added is not None:
            added.set()

    async def append_event(self, run_id: str, event_json: str, *, kind: RunKind = "task") -> int:
        seq = self._seq.get(run_id, 0) + 1
        self._store(run_id, StoredEvent(seq=seq, json=event_json))
        self._wake(run_id)
        return seq

    async def append_events(
        self, run_id: str, events: builtins.list[StoredEvent], *, kind: RunKind = "task"
    ) -> None:
        for event in events:
            if event.seq > self._seq.get(run_id, 0):
                self._store(run_id, event)
        self._wake(run_id)

    async def append_batches(
        self, batches: builtins.list[RunBatch]
    ) -> builtins.list[Exception | None]:
        for batch in batches:
            await self.append_events(batch.run_id, batch.events, kind=batch.kind)
        return [None] * len(batches)

    async def finish(
        self,
        run_id: str,
        events: builtins.list[StoredEvent],
        *,
        kind: RunKind,
        to: RunStatus,
        allowed_from: StatusSet,
        changes: RunUpdate,
        also: Sequence[tuple[str, ...]] = (),
    ) -> bool:
        await self.append_events(run_id, events, kind=kind)
        return await self.transition(run_id, to=to, allowed_from=allowed_from, changes=changes)

    async def last_seq(self, run_id: str) -> int:
        return self._seq.get(run_id, 0)

    async def read_events(
        self, run_id: str, *, after: int, limit: int
    ) -> builtins.list[StoredEvent]:
        events = self._events.get(run_id)
        if not events or events[-1].seq <= after:
            return []
        start = bisect.bisect_right(events, after, key=lambda event: event.seq)
        return events[start : start + limit]

    async def wait_events(
        self, run_id: str, *, after: int, wait_seconds: float
    ) -> builtins.list[StoredEvent]:
        found = await self.read_events(run_id, after=after, limit=WAIT_BATCH)
        if found:
            return found
        added = self._event_added.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(added.wait(), wait_seconds)
        except TimeoutError:
            return []
        return await self.read_events(run_id, after=after, limit=WAIT_BATCH)

    async def first_retained_seq(self, run_id: str) -> int | None:
        events = self._events.get(run_id)
        return events[0].seq if events else None

"""Where every run's record and event log live: one interface, two backends.

Foreground runs (invoke, stream, WebSocket) and background tasks share it: a task is a run
that a worker executes, queued by the task backend (app/tasks/backend.py) on top of this
store. Redis (app/store/run_store_redis.py) for real deployments, memory
(app/store/run_store_memory.py) for one process without Redis.

The event log of a run is an ordered list of ``(seq, json)``: ``seq`` strictly increases
from 1 and is the SSE event id. The process running the agent stamps ``seq`` and appends in
batches (``append_events``); anyone else who must add an event (cancelling a queued task,
failing a lost run) uses ``append_event``, which takes the next number. At most
``events_max`` events are kept per run (the oldest go first); records and logs are kept for
their kind's retention: RUN_RETENTION_SECONDS for foreground runs (there may be hundreds a
second), TASK_RETENTION_SECONDS for tasks.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.store.run_records import RunKind, RunRecord, RunStatus, RunUpdate, StatusSet


class FirstEventsNotLogged(Exception):
    """The record was created, its first events were not appended."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} first events not logged")
        self.count = count


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    json: str


@dataclass(frozen=True, slots=True)
class RunBatch:
    """Events of one run to append (``append_batches``)."""

    run_id: str
    kind: RunKind
    events: builtins.list[StoredEvent]


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which of an owner's runs to list; None matches any."""

    owner: str
    kind: RunKind | None = None
    status: RunStatus | None = None
    session_id: str | None = None


class RunStore(Protocol):
    # -- records ----------------------------------------------------------------------------
    async def create(
        self, record: RunRecord, events: builtins.list[StoredEvent] | None = None
    ) -> None:
        """Store a foreground run's record and index it (owner, session), and its first
        events with it (one round trip). Tasks are stored by the task backend's submit,
        atomically with their queue entry."""
        ...

    async def get(self, run_id: str) -> RunRecord | None: ...

    async def list(
        self, query: RunQuery, *, limit: int, offset: int
    ) -> tuple[builtins.list[RunRecord], int]:
        """The matching runs, newest first, and how many match."""
        ...

    async def update(self, run_id: str, changes: RunUpdate) -> None:
        """Set fields unconditionally (fields the running process owns)."""
        ...

    async def transition(
        self,
        run_id: str,
        *,
        to: RunStatus,
        allowed_from: StatusSet,
        changes: RunUpdate | None = None,
    ) -> bool:
        """Atomically move to ``to`` (applying ``changes``) if the status is in allowed_from."""
        ...

    async def update_if(self, run_id: str, *, status_in: StatusSet, changes: RunUpdate) -> bool:
        """Atomically apply ``changes`` if the status is in status_in; the status stays."""
        ...

    # -- events -----------------------------------------------------------------------------
    async def append_event(self, run_id: str, event_json: str, *, kind: RunKind = "task") -> int:
        """Append with the next sequence number, which it returns."""
        ...

    async def append_events(
        self, run_id: str, events: builtins.list[StoredEvent], *, kind: RunKind = "task"
    ) -> None:
        """Append events whose ``seq`` the writer stamped, in order; any at or below the last
        stored seq are skipped (a late write from a run that was taken over)."""
        ...

    async def append_batches(
        self, batches: builtins.list[RunBatch]
    ) -> builtins.list[Exception | None]:
        """``append_events`` for several runs in one call; per batch, None or what failed."""
        ...

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
        """A run's end in one call: append its last events, then ``transition``; ``also``:
        Redis commands of another store sent in the same round trip (a slot's release;
        a store without Redis is given none)."""
        ...

    async def last_seq(self, run_id: str) -> int:
        """The last sequence number used (0 for none)."""
        ...

    async def read_events(
        self, run_id: str, *, after: int, limit: int
    ) -> builtins.list[StoredEvent]: ...

    async def wait_events(
        self, run_id: str, *, after: int, wait_seconds: float
    ) -> builtins.list[StoredEvent]:
        """Events after ``after``, waiting up to ``wait_seconds`` for the first one."""
        ...

    async def first_retained_seq(self, run_id: str) -> int | None: ...

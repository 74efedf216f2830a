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

In Redis (``RunKeys``, under the key prefix; ``{x}`` is a hash tag, app/store/keyspace.py: one
run's keys share one Redis Cluster slot, and so does the task queue's scheduling state):

``run:{<id>}``              hash: the record (nested values as JSON)
``run:{<id>}:events``       stream of events; entry id ``<seq>-0`` is the event's seq
``run:{<id>}:seq``          the last event seq
``runs:live:{<id>}``        a record-less live run's holder (app/agents/live_runs.py)
``runs:owner:<owner>``      sorted set of the owner's run ids (foreground and tasks) by start
``runs:session:<id>``       sorted set of the session's run ids by start
``tasks:owner:<owner>``     sorted set of the owner's task ids by submit time
``{tasks}:<part>``          the task queue (app/tasks/redis_backend.py has its parts)
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import structlog

from app.core.lifecycle import raise_if_cancelling
from app.store.keyspace import tag
from app.store.run_records import RunKind, RunRecord, RunStatus, RunUpdate, StatusSet

log = structlog.get_logger(__name__)

# Told of every status a run moved to through ``transition`` or ``finish`` (the webhook outbox,
# app/webhooks/outbox.py), after the move is stored: the record it reads says so.
StatusObserver = Callable[[str, RunStatus], Awaitable[None]]


async def tell_observer(observer: StatusObserver | None, run_id: str, status: RunStatus) -> None:
    """Never fails the move it follows: what the observer could not do is logged."""
    if observer is None:
        return
    try:
        await observer(run_id, status)
    except Exception as exc:
        raise_if_cancelling()
        log.warning("run_status_observer_failed", run_id=run_id, error=type(exc).__name__)


class FirstEventsNotLogged(Exception):
    """The record was created, its first events were not appended."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} first events not logged")
        self.count = count


class StoredEvent(NamedTuple):
    """One logged event. A tuple, not a frozen dataclass: every event of every run is made
    into one, and a tuple is built in C (``LoggedEvent.stored``) without an ``__init__``."""

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


class RunKeys:
    """Key names of runs and of the task queue, shared with the task backend and the
    live-run registry."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def record(self, run_id: str) -> str:
        return f"{self.prefix}run:{tag(run_id)}"

    def events(self, run_id: str) -> str:
        return f"{self.prefix}run:{tag(run_id)}:events"

    def seq(self, run_id: str) -> str:
        return f"{self.prefix}run:{tag(run_id)}:seq"

    def live(self, run_id: str) -> str:
        """A record-less live run's holder (app/agents/live_runs.py)."""
        return f"{self.prefix}runs:live:{tag(run_id)}"

    def owner_index(self, owner: str) -> str:
        return f"{self.prefix}runs:owner:{owner}"

    def session_index(self, session_id: str) -> str:
        return f"{self.prefix}runs:session:{session_id}"

    def task_index(self, owner: str) -> str:
        return f"{self.prefix}tasks:owner:{owner}"

    def queue(self, part: str) -> str:
        """The task queue's scheduling state: one tag, so its scripts stay atomic (one slot,
        the queue's scaling bound)."""
        return f"{self.prefix}{tag('tasks')}:{part}"

    def active(self, owner: str) -> str:
        return self.queue(f"active:{owner}")


class RunStore(Protocol):
    observer: StatusObserver | None  # told of each status a run moved to (see StatusObserver)

    # -- records ----------------------------------------------------------------------------
    async def create(
        self, record: RunRecord, events: builtins.list[StoredEvent] | None = None
    ) -> None:
        """Store a foreground run's record and index it (owner, session), and its first
        events with it (one round trip). Tasks are stored by the task backend's submit,
        before their queue entry (app/tasks/redis_backend.py says why that order)."""
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

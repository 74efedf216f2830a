"""What the task service and the worker need from storage: one interface, two backends.

Redis (app/tasks/redis_backend.py) for real deployments: records in hashes, the queue in a
stream with a consumer group (at-least-once delivery, leases via idle time), events in a
per-task stream whose ids are the event sequence numbers. Memory (memory_backend.py) for a
single process with no Redis (`make run`).

Fairness, in both: a new task waits in its owner's own queue, and tasks are handed out one
owner at a time, round-robin, so one principal's backlog delays another's task by at most
one task per waiting principal, not by the whole backlog. ``submit`` also enforces the
owner's cap on active (not finished) tasks, atomically with storing the task.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from app.tasks.records import StatusSet, TaskRecord, TaskStatus, TaskUpdate

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's Idempotency-Key and the fingerprint of the body it came with."""

    key: str
    fingerprint: str


# created: stored and enqueued; replayed: the key's earlier task (same body), nothing
# enqueued; key_reused: the key was used with another body, nothing stored; over_cap: the
# owner already has max_active unfinished tasks, nothing stored.
SubmitOutcome = Literal["created", "replayed", "key_reused", "over_cap"]


@dataclass(frozen=True, slots=True)
class Submission:
    record: TaskRecord  # the new task (nothing stored when over_cap), or the key's earlier one
    outcome: SubmitOutcome


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a task to a worker; ``id`` identifies it in the queue."""

    id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    json: str


class TaskBackend(Protocol):
    # -- records ----------------------------------------------------------------------------
    async def submit(
        self, record: TaskRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
    ) -> Submission:
        """Store and enqueue atomically, unless this owner's key was already used (for
        IDEMPOTENCY_TTL_SECONDS): then the earlier task, replayed or key_reused by whether
        the fingerprints match; or unless the owner has ``max_active`` (> 0) unfinished
        tasks already: over_cap. A task stops counting when it reaches a terminal status."""
        ...

    async def get(self, task_id: str) -> TaskRecord | None: ...

    async def list(
        self, *, owner: str, status: TaskStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[TaskRecord], int]: ...

    async def update(self, task_id: str, changes: TaskUpdate) -> None:
        """Set fields unconditionally (fields the worker owns)."""
        ...

    async def transition(
        self,
        task_id: str,
        *,
        to: TaskStatus,
        allowed_from: StatusSet,
        changes: TaskUpdate | None = None,
    ) -> bool:
        """Atomically move to ``to`` (applying ``changes``) if the status is in allowed_from."""
        ...

    async def update_if(self, task_id: str, *, status_in: StatusSet, changes: TaskUpdate) -> bool:
        """Atomically apply ``changes`` if the status is in status_in; the status stays."""
        ...

    # -- queue ------------------------------------------------------------------------------
    async def dequeue(self, *, consumer: str, count: int, block_ms: int) -> builtins.list[Delivery]:
        """Up to ``count`` deliveries, owners served round-robin; waits up to block_ms."""
        ...

    async def reclaim(
        self, *, consumer: str, min_idle_ms: int, count: int
    ) -> builtins.list[Delivery]:
        """Deliveries whose worker stopped heartbeating for min_idle_ms, now ours."""
        ...

    async def heartbeat(self, *, consumer: str, deliveries: builtins.list[Delivery]) -> None: ...

    async def ack(self, delivery: Delivery) -> None: ...

    async def release(self, delivery: Delivery) -> None:
        """Give a delivery back for immediate redelivery (graceful worker shutdown)."""
        ...

    async def queue_depth(self) -> int: ...

    # -- events -----------------------------------------------------------------------------
    async def append_event(self, task_id: str, event_json: str) -> int:
        """Append; returns the event's sequence number in this task (1, 2, ...)."""
        ...

    async def read_events(
        self, task_id: str, *, after: int, limit: int
    ) -> builtins.list[StoredEvent]: ...

    async def wait_events(
        self, task_id: str, *, after: int, wait_seconds: float
    ) -> builtins.list[StoredEvent]:
        """Events after ``after``, waiting up to ``wait_seconds`` for the first one."""
        ...

    async def first_retained_seq(self, task_id: str) -> int | None: ...

    # -- control nudges ---------------------------------------------------------------------
    async def nudge(self, task_id: str) -> None:
        """Tell the worker holding the task to re-read its requests (cancel/pause/answer)."""
        ...

    async def listen(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """Call ``callback(task_id)`` for every nudge until cancelled."""
        ...

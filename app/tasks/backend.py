"""The task queue: what the task service and the worker need beyond the run store.

A task is a run that a worker executes: its record and event log are in the run store
(app/store/run_store.py, the backend's ``store``), like every foreground run's. This adds
the queue. Redis (app/tasks/redis_backend.py) for real deployments: a stream with a consumer
group (at-least-once delivery, leases via idle time). Memory (memory_backend.py) for a single
process with no Redis (`make run`).

Fairness, in both: a new task waits in its owner's own queue, and tasks are handed out one
owner at a time, round-robin, so one principal's backlog delays another's task by at most
one task per waiting principal, not by the whole backlog. ``submit`` also enforces the
owner's cap on active (not finished) tasks, atomically with queueing the task.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from app.store.run_records import RunRecord
from app.store.run_store import RunStore

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
    record: RunRecord  # the new task (nothing stored when over_cap), or the key's earlier one
    outcome: SubmitOutcome


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a task to a worker; ``id`` identifies it in the queue."""

    id: str
    task_id: str


class TaskBackend(Protocol):
    @property
    def store(self) -> RunStore:
        """Where the tasks' records and event logs are."""
        ...

    async def submit(
        self, record: RunRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
    ) -> Submission:
        """Store and enqueue, unless this owner's key was already used (for
        IDEMPOTENCY_TTL_SECONDS): then the earlier task, replayed or key_reused by whether
        the fingerprints match; or unless the owner has ``max_active`` (> 0) unfinished
        tasks already: over_cap. A refused task leaves nothing stored (Redis: its record is
        written first, then checked and queued in one script, and deleted if refused). A
        task stops counting when it reaches a terminal status."""
        ...

    # -- queue ------------------------------------------------------------------------------
    async def dequeue(self, *, consumer: str, count: int, block_ms: int) -> builtins.list[Delivery]:
        """Up to ``count`` deliveries, owners served round-robin; waits up to block_ms."""
        ...

    async def interrupt_dequeue(self) -> None:
        """A stopping worker's: end a waiting dequeue now, empty-handed, in a way that cannot
        lose a delivery (in memory: a flag; one Redis: ``CLIENT UNBLOCK .. TIMEOUT``, as if the
        block had timed out; a cluster's read ends within its block_ms)."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds of its clients (the clients are closed after)."""
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

    # -- control nudges ---------------------------------------------------------------------
    async def nudge(self, task_id: str) -> None:
        """Tell the worker holding the task to re-read its requests (cancel/pause/answer)."""
        ...

    async def listen(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """Call ``callback(task_id)`` for every nudge until cancelled."""
        ...

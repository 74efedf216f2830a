"""Tasks in Redis. Layout under the key prefix:

``task:<id>``            hash: the record (nested values as JSON)
``tasks:owner:<owner>``  sorted set of the owner's task ids by submit time
``tasks:idem:<owner>:<sha256(key)>``  ``<task id>:<body fingerprint>`` of the task an
                         Idempotency-Key made (24 h)
``tasks:active:<owner>`` set: the owner's unfinished task ids (MAX_ACTIVE_TASKS_PER_PRINCIPAL)
``tasks:waiting:<owner>`` list: the owner's tasks not yet handed to the queue, oldest first
``tasks:owners``         list: the owners with waiting tasks, in round-robin order
``tasks:waiting``        how many tasks wait in all the owners' lists
``tasks:queue``          stream, consumer group ``workers``: one entry per delivery
``task:<id>:events``     stream of events; entry id ``<seq>-0`` is the event's seq
``task:<id>:seq``        the last event seq
``tasks:control``        pub/sub channel of nudges (task ids)

Leases are the consumer group's idle time: a worker's heartbeat XCLAIMs its entries to
itself (resetting idle), and XAUTOCLAIM hands entries idle past the lease to a live worker.

Fair dispatch: a submitted task waits in its owner's list; ``_DISPATCH`` hands waiting
tasks to the stream one owner at a time, taking the owner at the head of ``tasks:owners``
and putting it back at the tail while it has more. The stream is kept short: a worker moves
only as many tasks as it has free slots (then reads them), and a submission moves one only
when nothing is undelivered (that wakes an idle worker at once). So a task waits behind at
most one task per waiting owner, not behind another owner's whole backlog.

Active tasks: ``submit`` adds the task to its owner's set, refusing when the set is full; a
transition to a terminal status removes it, in the same script. When the set is full,
members whose record has finished or expired are dropped before deciding, so a lost removal
never blocks an owner.

Multi-key scripts assume one Redis (not Cluster); the dispatch and pruning scripts also
reach keys they derive from the prefix.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.core.lifecycle import raise_if_cancelling
from app.tasks import redis_scripts as scripts
from app.tasks.backend import (
    IDEMPOTENCY_TTL_SECONDS,
    Delivery,
    IdempotencyKey,
    StoredEvent,
    Submission,
)
from app.tasks.records import (
    TERMINAL_STATUSES,
    StatusSet,
    TaskRecord,
    TaskStatus,
    TaskUpdate,
    changes_to_fields,
    from_fields,
    to_fields,
)

GROUP = "workers"  # the consumer group; redis_scripts.DISPATCH names it too


class RedisTaskBackend:
    def __init__(
        self,
        redis: Redis,
        *,
        blocking: Redis,
        prefix: str,
        retention_seconds: int,
        events_max: int,
    ) -> None:
        self._redis = redis
        self._blocking = blocking  # longer socket timeout, for BLOCKing reads only
        self._prefix = prefix
        self._retention = retention_seconds
        self._events_max = events_max
        self._queue = f"{prefix}tasks:queue"
        self._owners = f"{prefix}tasks:owners"
        self._waiting_total = f"{prefix}tasks:waiting"
        self._channel = f"{prefix}tasks:control"
        self._submit = redis.register_script(scripts.SUBMIT)
        self._refill = redis.register_script(scripts.REFILL)
        self._transition = redis.register_script(scripts.TRANSITION)
        self._append = redis.register_script(scripts.APPEND_EVENT)
        self._group_ready = False

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}task:{task_id}"

    # -- records ----------------------------------------------------------------------------
    def _active_prefix(self) -> str:
        return f"{self._prefix}tasks:active:"

    async def submit(
        self, record: TaskRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
    ) -> Submission:
        idem, fingerprint = "", ""
        if idempotency is not None:
            digest = hashlib.sha256(idempotency.key.encode()).hexdigest()
            idem = f"{self._prefix}tasks:idem:{record.owner}:{digest}"
            fingerprint = idempotency.fingerprint
        flat = [item for pair in to_fields(record).items() for item in pair]
        reply, task_id = await self._submit(
            keys=[
                idem,
                self._key(record.id),
                f"{self._prefix}tasks:owner:{record.owner}",
                self._queue,
                self._active_prefix() + record.owner,
                f"{self._prefix}tasks:waiting:{record.owner}",
                self._owners,
                self._waiting_total,
            ],
            args=[
                record.id,
                record.submitted_at.timestamp(),
                self._retention,
                IDEMPOTENCY_TTL_SECONDS,
                fingerprint,
                max_active,
                self._prefix,
                record.owner,
                *flat,
            ],
        )
        outcome = scripts.OUTCOMES[int(reply)]
        if outcome in ("created", "over_cap"):
            return Submission(record, outcome)
        existing = await self.get(str(task_id))
        if existing is None:  # the earlier task expired: its key outlived it, start over
            await self._redis.delete(idem)
            return await self.submit(record, idempotency=idempotency, max_active=max_active)
        return Submission(existing, outcome)

    async def get(self, task_id: str) -> TaskRecord | None:
        fields: dict[str, str] = await self._redis.hgetall(self._key(task_id))  # type: ignore[assignment]
        return from_fields(fields) if fields else None

    async def list(
        self, *, owner: str, status: TaskStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[TaskRecord], int]:
        index = f"{self._prefix}tasks:owner:{owner}"
        if status is None:  # one page of ids; polling clients list often
            ids: Any = await self._redis.zrevrange(index, offset, offset + limit - 1)
            total = int(await self._redis.zcard(index))
            return await self._records(ids), total
        # A status filter reads the owner's records (bounded by retention) and filters.
        every: Any = await self._redis.zrevrange(index, 0, -1)
        records = await self._records(every)
        matching = [record for record in records if record.status == status]
        return matching[offset : offset + limit], len(matching)

    async def _records(self, ids: builtins.list[str]) -> builtins.list[TaskRecord]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self._key(task_id))
            rows = await pipe.execute()
        return [from_fields(row) for row in rows if row]

    async def update(self, task_id: str, changes: TaskUpdate) -> None:
        mapping: dict[Any, Any] = changes_to_fields(changes)
        await self._redis.hset(self._key(task_id), mapping=mapping)

    async def transition(
        self,
        task_id: str,
        *,
        to: TaskStatus,
        allowed_from: StatusSet,
        changes: TaskUpdate | None = None,
    ) -> bool:
        return await self._set_if(task_id, to, allowed_from, changes or {})

    async def update_if(self, task_id: str, *, status_in: StatusSet, changes: TaskUpdate) -> bool:
        return await self._set_if(task_id, None, status_in, changes)

    async def _set_if(
        self, task_id: str, to: TaskStatus | None, allowed: StatusSet, changes: TaskUpdate
    ) -> bool:
        flat = [item for pair in changes_to_fields(changes).items() for item in pair]
        finishing = to is not None and to in TERMINAL_STATUSES
        moved = await self._transition(
            keys=[self._key(task_id)],
            args=[
                to or "",
                ",".join(sorted(allowed)),
                self._active_prefix() if finishing else "",
                task_id,
                *flat,
            ],
        )
        return bool(moved)

    # -- queue ------------------------------------------------------------------------------
    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self._queue, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _forget_group_if_gone(self, exc: ResponseError) -> None:
        # Redis restarted without its data: the group is gone; recreate it next time.
        if "NOGROUP" in str(exc):
            self._group_ready = False

    async def dequeue(self, *, consumer: str, count: int, block_ms: int) -> builtins.list[Delivery]:
        await self._ensure_group()
        # Hand this worker's share of the waiting tasks to the stream, owners in turn.
        await self._refill(
            keys=[self._queue, self._owners, self._waiting_total], args=[self._prefix, count]
        )
        try:
            reply: Any = await self._blocking.xreadgroup(
                GROUP, consumer, {self._queue: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            self._forget_group_if_gone(exc)
            raise
        return [
            Delivery(id=entry_id, task_id=fields["task"])
            for _, entries in reply or []
            for entry_id, fields in entries
        ]

    async def reclaim(
        self, *, consumer: str, min_idle_ms: int, count: int
    ) -> builtins.list[Delivery]:
        await self._ensure_group()
        try:
            reply: Any = await self._redis.xautoclaim(
                self._queue, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
            )
        except ResponseError as exc:
            self._forget_group_if_gone(exc)
            raise
        entries = reply[1] if reply else []
        return [
            Delivery(id=entry_id, task_id=fields["task"])
            for entry_id, fields in entries
            if fields  # a deleted entry comes back empty
        ]

    async def heartbeat(self, *, consumer: str, deliveries: builtins.list[Delivery]) -> None:
        if deliveries:
            await self._redis.xclaim(
                self._queue,
                GROUP,
                consumer,
                min_idle_time=0,
                message_ids=[d.id for d in deliveries],
                justid=True,
            )

    async def ack(self, delivery: Delivery) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._queue, GROUP, delivery.id)
            pipe.xdel(self._queue, delivery.id)
            await pipe.execute()

    async def release(self, delivery: Delivery) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._queue, {"task": delivery.task_id})
            pipe.xack(self._queue, GROUP, delivery.id)
            pipe.xdel(self._queue, delivery.id)
            await pipe.execute()

    async def queue_depth(self) -> int:
        # Stream entries are deleted on ack: its length is handed out + in progress; the
        # rest still waits in the owners' lists.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._queue)
            pipe.get(self._waiting_total)
            length, waiting = await pipe.execute()
        return int(length) + max(0, int(waiting or 0))

    # -- events -----------------------------------------------------------------------------
    def _events(self, task_id: str) -> str:
        return f"{self._prefix}task:{task_id}:events"

    async def append_event(self, task_id: str, event_json: str) -> int:
        seq = await self._append(
            keys=[self._events(task_id), f"{self._prefix}task:{task_id}:seq"],
            args=[event_json, self._events_max, self._retention],
        )
        return int(seq)

    async def read_events(
        self, task_id: str, *, after: int, limit: int
    ) -> builtins.list[StoredEvent]:
        entries: Any = await self._redis.xrange(
            self._events(task_id), min=f"({after}-0", count=limit
        )
        return [_stored(entry_id, fields) for entry_id, fields in entries]

    async def wait_events(
        self, task_id: str, *, after: int, wait_seconds: float
    ) -> builtins.list[StoredEvent]:
        reply: Any = await self._blocking.xread(
            {self._events(task_id): f"{after}-0"}, count=500, block=max(1, int(wait_seconds * 1000))
        )
        return [
            _stored(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries
        ]

    async def first_retained_seq(self, task_id: str) -> int | None:
        entries: Any = await self._redis.xrange(self._events(task_id), count=1)
        return int(entries[0][0].split("-")[0]) if entries else None

    # -- control nudges ---------------------------------------------------------------------
    async def nudge(self, task_id: str) -> None:
        await self._redis.publish(self._channel, task_id)

    async def listen(self, callback: Callable[[str], Awaitable[None]]) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await callback(str(message["data"]))
            except Exception:  # Redis away: the worker's heartbeat reconcile covers the gap
                raise_if_cancelling()
                await asyncio.sleep(0.5)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _stored(entry_id: str, fields: dict[str, str]) -> StoredEvent:
    return StoredEvent(seq=int(entry_id.split("-")[0]), json=fields["e"])

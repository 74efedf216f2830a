"""The task queue in Redis. Records and event logs are the run store's
(app/store/run_store_redis.py, which has their layout); here, under the key prefix:

``tasks:owner:<owner>``  sorted set of the owner's task ids by submit time
``tasks:idem:<owner>:<sha256(key)>``  ``<task id>:<body fingerprint>`` of the task an
                         Idempotency-Key made (24 h)
``tasks:active:<owner>`` set: the owner's unfinished task ids (MAX_ACTIVE_TASKS_PER_PRINCIPAL)
``tasks:waiting:<owner>`` list: the owner's tasks not yet handed to the queue, oldest first
``tasks:owners``         list: the owners with waiting tasks, in round-robin order
``tasks:waiting``        how many tasks wait in all the owners' lists
``tasks:queue``          stream, consumer group ``workers``: one entry per delivery
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
from app.store.run_records import RunRecord, to_fields
from app.store.run_store_redis import RedisRunStore
from app.tasks import redis_scripts as scripts
from app.tasks.backend import IDEMPOTENCY_TTL_SECONDS, Delivery, IdempotencyKey, Submission

GROUP = "workers"  # the consumer group; redis_scripts.DISPATCH names it too


class RedisTaskBackend:
    def __init__(self, redis: Redis, *, blocking: Redis, store: RedisRunStore) -> None:
        self._redis = redis
        self._blocking = blocking  # longer socket timeout, for BLOCKing reads only
        self.store = store
        self._keys = store.keys
        prefix = self._prefix = store.keys.prefix
        self._retention = store.retention
        self._queue = f"{prefix}tasks:queue"
        self._owners = f"{prefix}tasks:owners"
        self._waiting_total = f"{prefix}tasks:waiting"
        self._channel = f"{prefix}tasks:control"
        self._submit = redis.register_script(scripts.SUBMIT)
        self._refill = redis.register_script(scripts.REFILL)
        self._group_ready = False

    # -- submitting -------------------------------------------------------------------------

    async def submit(
        self, record: RunRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
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
                self._keys.record(record.id),
                self._keys.task_index(record.owner),
                self._queue,
                self._keys.active_prefix + record.owner,
                f"{self._prefix}tasks:waiting:{record.owner}",
                self._owners,
                self._waiting_total,
                self._keys.owner_index(record.owner),
                self._keys.session_index(record.session_id) if record.session_id else "",
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
        existing = await self.store.get(str(task_id))
        if existing is None:  # the earlier task expired: its key outlived it, start over
            await self._redis.delete(idem)
            return await self.submit(record, idempotency=idempotency, max_active=max_active)
        return Submission(existing, outcome)

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

"""The task queue in Redis. Records and event logs are the run store's
(app/store/run_store_redis.py; RunKeys has the run keys). Here, under the key prefix, the
queue's scheduling state, all under one hash tag (``{tasks}``: one Redis Cluster slot, so the
scripts stay atomic; that slot's node bounds the queue's throughput):

``{tasks}:idem:<owner>:<sha256(key)>``  ``<task id>:<body fingerprint>`` of the task an
                         Idempotency-Key made (24 h)
``{tasks}:active:<owner>`` sorted set: the owner's unfinished task ids, scored by their
                         record's expiry (MAX_ACTIVE_TASKS_PER_PRINCIPAL)
``{tasks}:waiting``      sorted set: the tasks not yet handed to the stream, by round
                         (redis_scripts.py: the owners are served in turn)
``{tasks}:rounds``       hash: owner -> the round of its last waiting task
``{tasks}:served``       set: the owners served in the current round
``{tasks}:clock``        hash: the current round, the submission sequence
``{tasks}:queue``        stream, consumer group ``workers``: one entry per delivery
``tasks:control``        pub/sub channel of nudges (task ids)

Leases are the consumer group's idle time: a worker's heartbeat XCLAIMs its entries to
itself (resetting idle), and XAUTOCLAIM hands entries idle past the lease to a live worker.

The stream is kept short: a worker moves only as many waiting tasks as it has free slots
(then reads them), and a submission moves one only when nothing is undelivered (that wakes
an idle worker at once). So a task waits behind at most one task per waiting owner, not
behind another owner's whole backlog.

On one Redis (or a Sentinel-watched primary) the three steps below go in one pipeline, one
round trip: one connection keeps their order (no MULTI: it would span slots, which the
suite's slot audit forbids everywhere); a refused submission then deletes its record and
index entries. On a cluster the record and the queue are other nodes, so the steps are
three round trips, in this order:
1. the record, alone: nothing can hand out a task whose record is not there yet (a worker
   acknowledges a delivery without a record and drops it);
2. SUBMIT: the key, the cap, the active set, the waiting set, in one script;
3. created: the indexes (owner, tasks, session), commands of their own. Refused (replayed,
   key reused, over the cap): the record is deleted.
A crash after 1 leaves a record nobody knows the id of, unindexed and never queued, which
expires; after 2, an accepted task that runs but is missing from its owner's listings.
Nothing accepted is lost, nothing runs twice beyond at-least-once delivery.

Active tasks: ``submit`` adds the task to its owner's set, refusing when the set is full; a
transition to a terminal status removes it (the run store, a command after the transition).
When the set is full, the members whose record has finished or expired are dropped and the
submission is tried once more, so a lost removal never blocks an owner.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from app.core.lifecycle import raise_if_cancelling
from app.store.redis_client import subscribable
from app.store.run_records import TERMINAL_STATUSES, RunRecord
from app.store.run_store_redis import RedisRunStore
from app.tasks import redis_scripts as scripts
from app.tasks.backend import (
    IDEMPOTENCY_TTL_SECONDS,
    Delivery,
    IdempotencyKey,
    Submission,
    SubmitOutcome,
)

log = structlog.get_logger(__name__)

GROUP = "workers"  # the consumer group; redis_scripts.DISPATCH names it too


class RedisTaskBackend:
    def __init__(self, redis: Redis, *, blocking: Redis, store: RedisRunStore) -> None:
        self._redis = redis
        self._blocking = blocking  # longer socket timeout, for BLOCKing reads only
        self.store = store
        keys = self._keys = store.keys
        self._retention = store.retention
        self._queue = keys.queue("queue")
        # The scripts' queue keys, in the order redis_scripts.DISPATCH names them.
        self.queue_keys = [
            self._queue,
            *(keys.queue(p) for p in ("waiting", "rounds", "served", "clock")),
        ]
        self._channel = f"{keys.prefix}tasks:control"  # a channel, not a key: any node
        self._submit = redis.register_script(scripts.SUBMIT)
        self._refill = redis.register_script(scripts.REFILL)
        self._group_ready = False
        # One Redis runs a pipeline in order; a cluster's slots are other nodes.
        self._one_node = not isinstance(redis, RedisCluster)
        self._reading: Redis | None = None  # dequeue's own connection (one Redis only)
        self._reader_id: int | None = None  # its CLIENT ID, for CLIENT UNBLOCK

    # -- submitting -------------------------------------------------------------------------

    async def submit(
        self, record: RunRecord, *, idempotency: IdempotencyKey | None, max_active: int = 0
    ) -> Submission:
        if self._one_node:
            outcome, task_id, members = await self._admit_at_once(record, idempotency, max_active)
        else:  # the order of the three steps is the module docstring's
            await self.store.put_record(record)
            # A failed SUBMIT may still have run (a lost reply): its record stays, which is
            # right if it ran and, unindexed and unqueued, invisible until it expires if not.
            outcome, task_id, members = await self._admit(record, idempotency, max_active)
        if outcome == "over_cap" and await self._drop_finished(record.owner, members):
            outcome, task_id, members = await self._admit(record, idempotency, max_active)
        if outcome == "created":
            if not self._one_node:
                await self._index(record)
            return Submission(record, outcome)
        await self._forget(record)
        if outcome == "over_cap":
            return Submission(record, outcome)
        existing = await self.store.get(task_id)
        if existing is None:  # the earlier task expired: its key outlived it, start over
            await self._redis.delete(self.submit_keys(record.owner, idempotency)[0])
            return await self.submit(record, idempotency=idempotency, max_active=max_active)
        return Submission(existing, outcome)

    def submit_keys(self, owner: str, idempotency: IdempotencyKey | None) -> builtins.list[str]:
        """SUBMIT's keys: the idempotency key (a name in the slot even without one), the
        owner's active set, the queue's keys."""
        digest = hashlib.sha256(idempotency.key.encode()).hexdigest() if idempotency else "-"
        idem = self._keys.queue(f"idem:{owner}:{digest}")
        return [idem, self._keys.active(owner), *self.queue_keys]

    async def _admit_at_once(
        self, record: RunRecord, idempotency: IdempotencyKey | None, max_active: int
    ) -> tuple[SubmitOutcome, str, builtins.list[str]]:
        """Record, SUBMIT and indexes in one pipeline: one connection keeps their order."""
        keys, args = (
            self.submit_keys(record.owner, idempotency),
            self._submit_args(record, idempotency, max_active),
        )
        written = self.store.record_commands(record)
        async with self._redis.pipeline(transaction=False) as pipe:
            for command in written:
                pipe.execute_command(*command)
            pipe.execute_command("EVALSHA", self._submit.sha, len(keys), *keys, *args)
            for command in self.store.index_commands(record):
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        reply = replies[len(written)]
        if isinstance(reply, NoScriptError):  # Redis lost its scripts: the record stands
            return await self._admit(record, idempotency, max_active)
        if isinstance(reply, Exception):
            raise reply
        return self._outcome(reply)

    async def _admit(
        self, record: RunRecord, idempotency: IdempotencyKey | None, max_active: int
    ) -> tuple[SubmitOutcome, str, builtins.list[str]]:
        reply: Any = await self._submit(
            keys=self.submit_keys(record.owner, idempotency),
            args=self._submit_args(record, idempotency, max_active),
        )
        return self._outcome(reply)

    def _submit_args(
        self, record: RunRecord, idempotency: IdempotencyKey | None, max_active: int
    ) -> builtins.list[str | int]:
        return [
            record.id,
            "1" if idempotency is not None else "",
            idempotency.fingerprint if idempotency is not None else "",
            IDEMPOTENCY_TTL_SECONDS,
            max_active,
            self._retention,
            record.owner,
        ]

    @staticmethod
    def _outcome(reply: Any) -> tuple[SubmitOutcome, str, builtins.list[str]]:
        members = [str(member) for member in reply[2]] if len(reply) > 2 else []
        return scripts.OUTCOMES[int(reply[0])], str(reply[1]), members

    async def _drop_finished(self, owner: str, members: builtins.list[str]) -> bool:
        """Drop the members whose record finished or expired (their removal was lost);
        whether any went. Terminal is final and a member's record is written before it is
        added, so a member read as gone or finished here stays so."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in members:
                pipe.hget(self._keys.record(task_id), "status")
            statuses = await pipe.execute()
        done = [
            task_id
            for task_id, status in zip(members, statuses, strict=True)
            if status is None or status in TERMINAL_STATUSES
        ]
        if done:
            await self._redis.zrem(self._keys.active(owner), *done)
        return bool(done)

    async def _index(self, record: RunRecord) -> None:
        # The task is accepted and queued: a failure here loses a listing entry, not the
        # task, so the submission still succeeds.
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command in self.store.index_commands(record):
                    pipe.execute_command(*command)
                await pipe.execute()
        except RedisError as exc:
            log.warning("task_index_failed", task_id=record.id, error=type(exc).__name__)

    async def _forget(self, record: RunRecord) -> None:
        """Delete a record the queue refused (and, on one Redis, its index entries); left
        behind, it expires unseen and its index entries are skipped like an expired one's."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._keys.record(record.id))
                if self._one_node:  # the submission's pipeline indexed it
                    for index in self.store.index_keys(record):
                        pipe.zrem(index, record.id)
                await pipe.execute()
        except RedisError as exc:
            log.warning("task_record_cleanup_failed", task_id=record.id, error=type(exc).__name__)

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

    # A stopping worker must not wait out its blocking read, nor cut it short (a cancelled
    # XREADGROUP may already have taken entries, which would wait out a lease). On one Redis
    # the read goes over a connection of its own whose CLIENT ID is known, and
    # ``CLIENT UNBLOCK <id> TIMEOUT`` ends it as if its block had run out: empty-handed. Any
    # error drops that connection (a restart or a failover: the next read takes a fresh one);
    # an id gone stale names no client or another of ours blocked on a read, which treats
    # the unblock as a timeout. A cluster client has no single-connection form; its read ends
    # within its block.
    async def _reader(self) -> Redis:
        if not self._one_node:
            return self._blocking
        if self._reading is None:
            reader = self._blocking.client()
            try:
                self._reader_id = int(await reader.client_id())
            except BaseException:
                await reader.aclose()
                raise
            self._reading = reader
        return self._reading

    async def _drop_reader(self) -> None:
        reader, self._reading, self._reader_id = self._reading, None, None
        if reader is not None:
            with contextlib.suppress(RedisError, OSError):
                await reader.aclose()  # its connection back to the pool, or closed

    async def interrupt_dequeue(self) -> None:
        if self._reader_id is None:
            return
        try:
            await self._redis.client_unblock(self._reader_id, error=False)
        except RedisError as exc:  # Redis away: the read ends within its block anyway
            log.warning("task_dequeue_unblock_failed", error=type(exc).__name__)

    async def aclose(self) -> None:
        await self._drop_reader()

    async def dequeue(self, *, consumer: str, count: int, block_ms: int) -> builtins.list[Delivery]:
        await self._ensure_group()
        # Hand this worker's share of the waiting tasks to the stream, owners in turn.
        await self._refill(keys=self.queue_keys, args=[count])
        reader = await self._reader()
        try:
            reply: Any = await reader.xreadgroup(
                GROUP, consumer, {self._queue: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            self._forget_group_if_gone(exc)
            raise
        except (RedisError, OSError):
            await self._drop_reader()
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
        # rest still waits in the waiting set.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._queue)
            pipe.zcard(self.queue_keys[1])
            length, waiting = await pipe.execute()
        return int(length) + int(waiting)

    # -- control nudges ---------------------------------------------------------------------
    async def nudge(self, task_id: str) -> None:
        await self._redis.publish(self._channel, task_id)

    async def listen(self, callback: Callable[[str], Awaitable[None]]) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await subscribable(self._redis)
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

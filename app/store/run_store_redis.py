"""Run records and event logs in Redis; the key layout is RunKeys' (app/store/run_store.py).

A script touches one run's keys only (one hash tag, one Redis Cluster slot); the indexes are
other entities, written by commands of their own in the same pipeline. A run's keys expire
its kind's retention after their last write (RUN_RETENTION_SECONDS for a foreground run,
TASK_RETENTION_SECONDS for a task); the indexes drop members older than the longer one
whenever one is added, so a busy owner's index stays bounded. A filtered listing reads at
most the newest ``FILTER_SCAN`` entries of its index.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError
from redis.typing import EncodableT

from app.store.run_records import (
    TERMINAL_STATUSES,
    RunKind,
    RunRecord,
    RunStatus,
    RunUpdate,
    StatusSet,
    changes_to_fields,
    from_fields,
    to_fields,
)
from app.store.run_scripts import APPEND_EVENT, APPEND_EVENTS, CREATE, TRANSITION
from app.store.run_store import (
    FirstEventsNotLogged,
    RunBatch,
    RunQuery,
    StatusObserver,
    StoredEvent,
    tell_observer,
)
from app.store.run_store import RunKeys as RunKeys  # the key names, where they always were

log = structlog.get_logger(__name__)

WAIT_BATCH = 500
FILTER_SCAN = 1000  # a status or kind filter reads this many of the newest records at most


class RedisRunStore:
    def __init__(
        self,
        redis: Redis,
        *,
        blocking: Redis,
        prefix: str,
        retention_seconds: int,
        run_retention_seconds: int,
        events_max: int,
    ) -> None:
        self._redis = redis
        self._blocking = blocking  # longer socket timeout, for BLOCKing reads only
        self.keys = RunKeys(prefix)
        self.retention = retention_seconds  # tasks'; indexes keep members this long
        self.run_retention = run_retention_seconds
        self.events_max = events_max
        self._transition = redis.register_script(TRANSITION)
        self._append = redis.register_script(APPEND_EVENT)
        self._append_many = redis.register_script(APPEND_EVENTS)
        self._create = redis.register_script(CREATE)
        self.observer: StatusObserver | None = None

    # -- records ----------------------------------------------------------------------------
    async def create(
        self, record: RunRecord, events: builtins.list[StoredEvent] | None = None
    ) -> None:
        # One round trip: the record, its indexes, its first events. The record goes first
        # (on a cluster the nodes apply their parts in parallel): a crash may leave an index
        # member without its record, which listings skip like an expired one, or a record
        # not yet indexed, readable by id; both expire.
        create_keys, create_args = [self.keys.record(record.id)], self._record_args(record)
        append_keys = [self.keys.events(record.id), self.keys.seq(record.id)]
        indexes = self.index_commands(record)
        async with self._redis.pipeline(transaction=False) as pipe:
            # EVALSHA straight (as in finish); a Redis that lost its scripts answers
            # NOSCRIPT and that part runs alone, which loads it.
            _evalsha(pipe, self._create, create_keys, create_args)
            for command in indexes:
                pipe.execute_command(*command)
            if events:
                _evalsha(pipe, self._append_many, append_keys, self._batch(events, record.kind))
            replies = await pipe.execute(raise_on_error=False)
        created = replies[0]
        if _no_script(created):
            await self._create(keys=create_keys, args=create_args)
        elif isinstance(created, Exception):
            raise created
        failed = [reply for reply in replies[1 : 1 + len(indexes)] if isinstance(reply, Exception)]
        if failed:
            raise failed[0]
        if not events:
            return
        appended = replies[-1]
        if _no_script(appended):
            await self.append_events(record.id, events, kind=record.kind)
        elif isinstance(appended, Exception):  # the record stands: the log misses its start
            raise FirstEventsNotLogged(len(events)) from appended

    def _record_args(self, record: RunRecord) -> builtins.list[EncodableT]:
        flat = [item for pair in to_fields(record).items() for item in pair]
        return [self._retention_of(record.kind), *flat]

    async def put_record(self, record: RunRecord) -> None:
        """Store the record alone (a task's, before the queue admits it)."""
        await self._create(keys=[self.keys.record(record.id)], args=self._record_args(record))

    def record_commands(self, record: RunRecord) -> builtins.list[tuple[EncodableT, ...]]:
        """``put_record`` as plain commands, for a pipeline that carries more: no script
        that Redis may have lost, so what follows them never runs without the record."""
        key, (ttl, *flat) = self.keys.record(record.id), self._record_args(record)
        return [("HSET", key, *flat), ("EXPIRE", key, ttl)]

    async def delete_record(self, run_id: str) -> None:
        await self._redis.delete(self.keys.record(run_id))

    def index_commands(self, record: RunRecord) -> builtins.list[tuple[EncodableT, ...]]:
        """The commands that list the run in its owner's (and a task's), and its session's,
        indexes: one key each, so any pipeline may carry them."""
        kept = max(self.retention, self.run_retention)
        indexes = self.index_keys(record)
        score, oldest = record.submitted_at.timestamp(), time.time() - kept
        commands: builtins.list[tuple[EncodableT, ...]] = []
        for index in indexes:
            commands += [
                ("ZADD", index, score, record.id),
                ("ZREMRANGEBYSCORE", index, "-inf", f"({oldest}"),
                ("EXPIRE", index, kept),
            ]
        return commands

    def index_keys(self, record: RunRecord) -> builtins.list[str]:
        indexes = [self.keys.owner_index(record.owner)]
        if record.kind == "task":
            indexes.append(self.keys.task_index(record.owner))
        if record.session_id is not None:
            indexes.append(self.keys.session_index(record.session_id))
        return indexes

    def _retention_of(self, kind: RunKind) -> int:
        return self.run_retention if kind == "run" else self.retention

    async def get(self, run_id: str) -> RunRecord | None:
        fields: dict[str, str] = await self._redis.hgetall(self.keys.record(run_id))  # type: ignore[assignment]
        return from_fields(fields) if fields else None

    async def list(
        self, query: RunQuery, *, limit: int, offset: int
    ) -> tuple[builtins.list[RunRecord], int]:
        if query.session_id is not None:
            index = self.keys.session_index(query.session_id)
        elif query.kind == "task":
            index = self.keys.task_index(query.owner)
        else:
            index = self.keys.owner_index(query.owner)
        simple = query.status is None and query.session_id is None and query.kind != "run"
        if simple:  # one page of ids; polling clients list often
            ids: Any = await self._redis.zrevrange(index, offset, offset + limit - 1)
            total = int(await self._redis.zcard(index))
            records = await self._records(ids)
            return [r for r in records if r.owner == query.owner], total
        # A filter reads the newest records of the index and filters them.
        every: Any = await self._redis.zrevrange(index, 0, FILTER_SCAN - 1)
        matching = [
            r
            for r in await self._records(every)
            if r.owner == query.owner
            and (query.kind is None or r.kind == query.kind)
            and (query.status is None or r.status == query.status)
        ]
        return matching[offset : offset + limit], len(matching)

    async def _records(self, ids: builtins.list[str]) -> builtins.list[RunRecord]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id in ids:
                pipe.hgetall(self.keys.record(run_id))
            rows = await pipe.execute()
        return [from_fields(row) for row in rows if row]

    async def update(self, run_id: str, changes: RunUpdate) -> None:
        mapping: dict[Any, Any] = changes_to_fields(changes)
        await self._redis.hset(self.keys.record(run_id), mapping=mapping)

    async def transition(
        self,
        run_id: str,
        *,
        to: RunStatus,
        allowed_from: StatusSet,
        changes: RunUpdate | None = None,
    ) -> bool:
        return await self._set_if(run_id, to, allowed_from, changes or {})

    async def update_if(self, run_id: str, *, status_in: StatusSet, changes: RunUpdate) -> bool:
        return await self._set_if(run_id, None, status_in, changes)

    async def _set_if(
        self, run_id: str, to: RunStatus | None, allowed: StatusSet, changes: RunUpdate
    ) -> bool:
        reply = await self._transition(
            keys=[self.keys.record(run_id)], args=self._transition_args(to, allowed, changes)
        )
        return await self._moved(run_id, reply, to)

    def _transition_args(
        self, to: RunStatus | None, allowed: StatusSet, changes: RunUpdate
    ) -> builtins.list[EncodableT]:
        flat = [item for pair in changes_to_fields(changes).items() for item in pair]
        finishing = "1" if to is not None and to in TERMINAL_STATUSES else ""
        return [to or "", ",".join(sorted(allowed)), finishing, *flat]

    async def _moved(self, run_id: str, reply: Any, to: RunStatus | None) -> bool:
        """TRANSITION's reply; a task that has just finished leaves its owner's active set
        here, a command of its own (another slot). A crash or an error between the two
        leaves the member until the owner's next submission at its cap, which reads the
        members' records and drops the finished ones, or until its score (the record's
        expiry) passes."""
        moved, owner = int(reply[0]), str(reply[1] or "")
        if moved and owner:
            try:
                await self._redis.zrem(self.keys.active(owner), run_id)
            except RedisError as exc:
                log.warning("active_task_release_failed", run_id=run_id, error=type(exc).__name__)
        if moved and to is not None:
            await tell_observer(self.observer, run_id, to)
        return bool(moved)

    # -- events -----------------------------------------------------------------------------
    async def append_event(self, run_id: str, event_json: str, *, kind: RunKind = "task") -> int:
        seq = await self._append(
            keys=[self.keys.events(run_id), self.keys.seq(run_id)],
            args=[self.events_max, self._retention_of(kind), event_json],
        )
        return int(seq)

    async def append_events(
        self, run_id: str, events: builtins.list[StoredEvent], *, kind: RunKind = "task"
    ) -> None:
        await self._append_many(
            keys=[self.keys.events(run_id), self.keys.seq(run_id)],
            args=self._batch(events, kind),
        )

    async def append_batches(
        self, batches: builtins.list[RunBatch]
    ) -> builtins.list[Exception | None]:
        # One pipeline, EVALSHA straight (as in finish): a Redis that lost its scripts answers
        # NOSCRIPT, and those batches are appended on their own, which loads the script.
        async with self._redis.pipeline(transaction=False) as pipe:
            for batch in batches:
                keys = [self.keys.events(batch.run_id), self.keys.seq(batch.run_id)]
                _evalsha(pipe, self._append_many, keys, self._batch(batch.events, batch.kind))
            replies = await pipe.execute(raise_on_error=False)
        outcomes: builtins.list[Exception | None] = []
        for batch, reply in zip(batches, replies, strict=True):
            if _no_script(reply):
                try:
                    await self.append_events(batch.run_id, batch.events, kind=batch.kind)
                    reply = None
                except Exception as exc:
                    reply = exc
            outcomes.append(reply if isinstance(reply, Exception) else None)
        return outcomes

    def _batch(self, events: builtins.list[StoredEvent], kind: RunKind) -> builtins.list[Any]:
        return [
            self.events_max,
            self._retention_of(kind),
            ",".join(str(event.seq) for event in events),
            "\n".join(event.json for event in events),
        ]

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
        transition_args = self._transition_args(to, allowed_from, changes)
        append_keys = [self.keys.events(run_id), self.keys.seq(run_id)]
        # EVALSHA straight into the pipeline: the script objects would add a SCRIPT EXISTS
        # round trip to every execute. A Redis that lost its scripts (restart) answers
        # NOSCRIPT; then each part runs on its own, which loads it.
        async with self._redis.pipeline(transaction=False) as pipe:
            if events:
                _evalsha(pipe, self._append_many, append_keys, self._batch(events, kind))
            _evalsha(pipe, self._transition, [self.keys.record(run_id)], transition_args)
            for command in also:
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        if also:
            replies = replies[: len(replies) - len(also)]  # theirs: best effort, like the rest
        if events and _no_script(replies[0]):
            await self.append_events(run_id, events, kind=kind)
        moved = replies[-1]
        if _no_script(moved):
            return await self._set_if(run_id, to, allowed_from, changes)
        if isinstance(moved, Exception):
            raise moved
        return await self._moved(run_id, moved, to)  # a task: one more round trip, its cap

    async def last_seq(self, run_id: str) -> int:
        return int(await self._redis.get(self.keys.seq(run_id)) or 0)

    async def read_events(
        self, run_id: str, *, after: int, limit: int
    ) -> builtins.list[StoredEvent]:
        entries: Any = await self._redis.xrange(
            self.keys.events(run_id), min=f"({after}-0", count=limit
        )
        return [_stored(entry_id, fields) for entry_id, fields in entries]

    async def wait_events(
        self, run_id: str, *, after: int, wait_seconds: float
    ) -> builtins.list[StoredEvent]:
        reply: Any = await self._blocking.xread(
            {self.keys.events(run_id): f"{after}-0"},
            count=WAIT_BATCH,
            block=max(1, int(wait_seconds * 1000)),
        )
        return [
            _stored(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries
        ]

    async def first_retained_seq(self, run_id: str) -> int | None:
        entries: Any = await self._redis.xrange(self.keys.events(run_id), count=1)
        return int(entries[0][0].split("-")[0]) if entries else None


def _evalsha(pipe: Any, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> None:
    # As a raw command: a cluster pipeline refuses ``evalsha()`` but routes this by its keys.
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


def _no_script(reply: object) -> bool:
    return isinstance(reply, NoScriptError)


def _stored(entry_id: str, fields: dict[str, str]) -> StoredEvent:
    return StoredEvent(seq=int(entry_id.split("-")[0]), json=fields["e"])

"""Run records and event logs in Redis. Layout under the key prefix:

``run:<id>``               hash: the record (nested values as JSON)
``run:<id>:events``        stream of events; entry id ``<seq>-0`` is the event's seq
``run:<id>:seq``           the last event seq
``runs:owner:<owner>``     sorted set of the owner's run ids (foreground and tasks) by start
``runs:session:<id>``      sorted set of the session's run ids by start
``tasks:active:<owner>``   the owner's unfinished tasks (kept by the task backend; a
                           terminal transition removes the task in the same script)

A run's keys expire its kind's retention after their last write (RUN_RETENTION_SECONDS for a
foreground run, TASK_RETENTION_SECONDS for a task); the indexes drop members older than the
longer one whenever one is added, so a busy owner's index stays bounded. A filtered listing
reads at most the newest ``FILTER_SCAN`` entries of its index.
Multi-key scripts assume one Redis (not Cluster).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError
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
from app.store.run_store import FirstEventsNotLogged, RunBatch, RunQuery, StoredEvent

WAIT_BATCH = 500
FILTER_SCAN = 1000  # a status or kind filter reads this many of the newest records at most

# ARGV[1]: the new status ('' keeps it); ARGV[2]: the allowed statuses; ARGV[3]: the
# owners' active-task-set key prefix when the new status is terminal, else ''; ARGV[4]: the
# run id; then field, value...
TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
for allowed in string.gmatch(ARGV[2], '[^,]+') do
  if allowed == current then
    redis.call('HSET', KEYS[1], unpack(ARGV, 5))
    if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[1]) end
    if ARGV[3] ~= '' then
      local owner = redis.call('HGET', KEYS[1], 'owner')
      if owner then redis.call('SREM', ARGV[3] .. owner, ARGV[4]) end
    end
    return 1
  end
end
return 0
"""

# KEYS: events, seq. ARGV: max events kept, retention, event json. Returns the new seq.
APPEND_EVENT = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return seq
"""

# KEYS: events, seq. ARGV: max events kept, retention, the seqs joined by ',', the events'
# JSON joined by '\n' (JSON text never holds a raw newline): two arguments for any batch,
# since encoding one argument per event was most of the client's cost. Skips events at or
# below the stored seq (a late write from a run another process took over).
APPEND_EVENTS = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seqs = {}
for seq in string.gmatch(ARGV[3], '[^,]+') do seqs[#seqs + 1] = tonumber(seq) end
local i = 0
for json in string.gmatch(ARGV[4], '[^\\n]+') do
  i = i + 1
  if seqs[i] > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seqs[i] .. '-0', 'e', json)
    last = seqs[i]
  end
end
redis.call('SET', KEYS[2], last, 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return last
"""

# KEYS: record, owner index, session index ('' = none). ARGV: record TTL, index TTL, the
# oldest score an index keeps, run id, start score, then field, value... One call, not a
# seven-command transaction: a foreground run pays it before its first event.
CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[1])
for i = 2, 3 do
  if KEYS[i] ~= '' then
    redis.call('ZADD', KEYS[i], ARGV[5], ARGV[4])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[3])
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
return 1
"""


class RunKeys:
    """Key names, shared with the task backend's scripts."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def record(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}"

    def events(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:events"

    def seq(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:seq"

    def owner_index(self, owner: str) -> str:
        return f"{self.prefix}runs:owner:{owner}"

    def session_index(self, session_id: str) -> str:
        return f"{self.prefix}runs:session:{session_id}"

    def task_index(self, owner: str) -> str:
        return f"{self.prefix}tasks:owner:{owner}"

    @property
    def active_prefix(self) -> str:
        return f"{self.prefix}tasks:active:"


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

    # -- records ----------------------------------------------------------------------------
    async def create(
        self, record: RunRecord, events: builtins.list[StoredEvent] | None = None
    ) -> None:
        keys, kept_longest = self.keys, max(self.retention, self.run_retention)
        flat = [item for pair in to_fields(record).items() for item in pair]
        session = record.session_id
        create_keys = [
            keys.record(record.id),
            keys.owner_index(record.owner),
            keys.session_index(session) if session is not None else "",
        ]
        create_args: builtins.list[EncodableT] = [
            self._retention_of(record.kind),
            kept_longest,
            time.time() - kept_longest,
            record.id,
            record.submitted_at.timestamp(),
            *flat,
        ]
        if not events:
            await self._create(keys=create_keys, args=create_args)
            return
        # The record and the run's first events in one round trip (EVALSHA straight, as in
        # finish; a Redis that lost its scripts answers NOSCRIPT and each part runs alone).
        append_keys = [keys.events(record.id), keys.seq(record.id)]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._create.sha, 3, *create_keys, *create_args)
            pipe.evalsha(self._append_many.sha, 2, *append_keys, *self._batch(events, record.kind))
            created, appended = await pipe.execute(raise_on_error=False)
        if _no_script(created):
            await self._create(keys=create_keys, args=create_args)
        elif isinstance(created, Exception):
            raise created
        if _no_script(appended):
            await self.append_events(record.id, events, kind=record.kind)
        elif isinstance(appended, Exception):  # the record stands: the log misses its start
            raise FirstEventsNotLogged(len(events)) from appended

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
        flat = [item for pair in changes_to_fields(changes).items() for item in pair]
        finishing = to is not None and to in TERMINAL_STATUSES
        moved = await self._transition(
            keys=[self.keys.record(run_id)],
            args=[
                to or "",
                ",".join(sorted(allowed)),
                self.keys.active_prefix if finishing else "",
                run_id,
                *flat,
            ],
        )
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
                pipe.evalsha(
                    self._append_many.sha, 2, *keys, *self._batch(batch.events, batch.kind)
                )
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
        flat = [item for pair in changes_to_fields(changes).items() for item in pair]
        transition_args = [to, ",".join(sorted(allowed_from)), self.keys.active_prefix, run_id]
        append_keys = [self.keys.events(run_id), self.keys.seq(run_id)]
        # EVALSHA straight into the pipeline: the script objects would add a SCRIPT EXISTS
        # round trip to every execute. A Redis that lost its scripts (restart) answers
        # NOSCRIPT; then each part runs on its own, which loads it.
        async with self._redis.pipeline(transaction=False) as pipe:
            if events:
                pipe.evalsha(self._append_many.sha, 2, *append_keys, *self._batch(events, kind))
            pipe.evalsha(self._transition.sha, 1, self.keys.record(run_id), *transition_args, *flat)
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
        return bool(moved)

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


def _no_script(reply: object) -> bool:
    return isinstance(reply, NoScriptError)


def _stored(entry_id: str, fields: dict[str, str]) -> StoredEvent:
    return StoredEvent(seq=int(entry_id.split("-")[0]), json=fields["e"])

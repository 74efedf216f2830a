"""Session store backends: in-memory (one process) and Redis (shared by every replica).

Both honour ``app.store.sessions.SessionStore`` and are tested by the same contract tests.

Redis layout under ``{REDIS_KEY_PREFIX}sessions:``
  ``rec:<id>``          hash: id, owner, agent, created_at, updated_at (ISO 8601)
  ``msgs:<id>``         list of ChatMessage JSON, oldest first, trimmed to ``max_messages``
  ``lock:<id>``         string: the run id holding the session (SET NX EX)
  ``owner:<owner>``     sorted set of the owner's session ids, score = created_at (listing)
  ``expiry:<owner>``    sorted set of the same ids, score = expiry deadline (cheap pruning)
Every read through ``get`` and every ``append`` pushes the expiry of all of them forward, so an
idle session disappears as a whole. ``message_count`` is the length of the kept history.
``append`` and ``release_run_lock`` are small Lua scripts (atomic check-then-write).
"""

from __future__ import annotations

import builtins
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from app.core.clock import utcnow
from app.core.config import Settings
from app.llm.types import ChatMessage
from app.store.sessions import SessionRecord, SessionStore

_SWEEP_EVERY = 256

# Compare-and-delete: a run whose lock expired (and was taken by another run) must not
# release the new holder's lock.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Push, trim, bump updated_at and every expiry in one atomic step, and only while the session
# still exists: a plain MULTI cannot check that (its HSET would recreate a partial record) and
# WATCH + MULTI livelocks when appends to one session race.
# KEYS: record, messages, owner index, expiry index.
# ARGV: owner, ttl_ms, max_messages, updated_at, deadline, session_id, messages...
_APPEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
for i = 7, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
redis.call('ZADD', KEYS[4], 'XX', ARGV[5], ARGV[6])
return 1
"""


class SessionNotFoundError(LookupError):
    """Raised by ``append`` when the session is missing, expired or was deleted."""


def new_session_id() -> str:
    return uuid4().hex


# --- memory ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    record: SessionRecord
    messages: deque[str]  # JSON, like Redis: callers never share mutable objects with the store
    deadline: float  # time.monotonic()
    seq: int  # creation order, to break created_at ties


class MemorySessionStore:
    """Single-process backend; expiry follows ``time.monotonic`` and is checked on access."""

    def __init__(self, *, max_messages: int, ttl_seconds: float) -> None:
        self._max_messages = max_messages
        self._ttl = ttl_seconds
        self._sessions: dict[str, _Entry] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._created = 0

    def _live(self, session_id: str) -> _Entry | None:
        entry = self._sessions.get(session_id)
        if entry is not None and entry.deadline <= time.monotonic():
            self._drop(session_id)
            return None
        return entry

    def _drop(self, session_id: str) -> _Entry | None:
        entry = self._sessions.pop(session_id, None)
        self._locks.pop(session_id, None)
        if entry is not None:
            ids = self._by_owner.get(entry.record.owner)
            if ids is not None:
                ids.discard(session_id)
                if not ids:
                    del self._by_owner[entry.record.owner]
        return entry

    def _touch(self, entry: _Entry) -> None:
        entry.deadline = time.monotonic() + self._ttl

    def _sweep(self) -> None:
        # Sessions nobody reads again would otherwise stay in memory forever.
        now = time.monotonic()
        for session_id in [sid for sid, e in self._sessions.items() if e.deadline <= now]:
            self._drop(session_id)

    async def create(self, *, owner: str, agent: str) -> SessionRecord:
        self._created += 1
        if self._created % _SWEEP_EVERY == 0:
            self._sweep()
        record = SessionRecord(id=new_session_id(), owner=owner, agent=agent)
        entry = _Entry(record, deque(maxlen=self._max_messages), 0.0, self._created)
        self._touch(entry)
        self._sessions[record.id] = entry
        self._by_owner.setdefault(owner, set()).add(record.id)
        return record.model_copy()

    async def get(self, session_id: str) -> SessionRecord | None:
        entry = self._live(session_id)
        if entry is None:
            return None
        self._touch(entry)
        return entry.record.model_copy(update={"message_count": len(entry.messages)})

    async def list(
        self, *, owner: str, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        live = [e for sid in list(self._by_owner.get(owner, ())) if (e := self._live(sid))]
        live.sort(key=lambda e: (e.record.created_at, e.seq), reverse=True)
        page = live[offset : offset + limit] if limit > 0 else []
        items = [e.record.model_copy(update={"message_count": len(e.messages)}) for e in page]
        return items, len(live)

    async def delete(self, session_id: str) -> bool:
        found = self._live(session_id) is not None
        self._drop(session_id)
        return found

    async def messages(
        self, session_id: str, *, limit: int, offset: int
    ) -> builtins.list[ChatMessage]:
        entry = self._live(session_id)
        if entry is None or limit <= 0:
            return []
        window = islice(entry.messages, offset, offset + limit)
        return [ChatMessage.model_validate_json(raw) for raw in window]

    async def append(self, session_id: str, messages: builtins.list[ChatMessage]) -> None:
        entry = self._live(session_id)
        if entry is None:
            raise SessionNotFoundError(session_id)
        entry.messages.extend(m.model_dump_json(exclude_none=True) for m in messages)
        entry.record = entry.record.model_copy(update={"updated_at": utcnow()})
        self._touch(entry)

    async def acquire_run_lock(self, session_id: str, *, run_id: str, ttl_seconds: int) -> bool:
        held = self._locks.get(session_id)
        now = time.monotonic()
        if held is not None and held[1] > now:
            return False
        self._locks[session_id] = (run_id, now + ttl_seconds)
        return True

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        held = self._locks.get(session_id)
        if held is not None and held[0] == run_id:
            del self._locks[session_id]


# --- redis -------------------------------------------------------------------------------------


class RedisSessionStore:
    """Shared backend; see the module docstring for the key layout."""

    def __init__(self, redis: Redis, *, prefix: str, max_messages: int, ttl_seconds: float) -> None:
        self._redis = redis
        self._prefix = f"{prefix}sessions:"
        self._max_messages = max_messages
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._release = redis.register_script(_RELEASE_LOCK)
        self._append = redis.register_script(_APPEND)

    def _rec(self, session_id: str) -> str:
        return f"{self._prefix}rec:{session_id}"

    def _msgs(self, session_id: str) -> str:
        return f"{self._prefix}msgs:{session_id}"

    def _lock(self, session_id: str) -> str:
        return f"{self._prefix}lock:{session_id}"

    def _owner(self, owner: str) -> str:
        return f"{self._prefix}owner:{owner}"

    def _expiry(self, owner: str) -> str:
        return f"{self._prefix}expiry:{owner}"

    def _deadline(self) -> float:
        # Wall clock, only used to pick pruning candidates; each is confirmed with EXISTS, so
        # clock skew between replicas delays pruning but never removes a live session.
        return time.time() + self._ttl_ms / 1000

    @staticmethod
    def _record(fields: dict[str, Any], count: int) -> SessionRecord:
        return SessionRecord.model_validate({**fields, "message_count": count})

    async def create(self, *, owner: str, agent: str) -> SessionRecord:
        record = SessionRecord(id=new_session_id(), owner=owner, agent=agent)
        sid, rec = record.id, self._rec(record.id)
        dumped = record.model_dump(mode="json", exclude={"message_count"}, exclude_none=True)
        fields: dict[FieldT, EncodableT] = {k: str(v) for k, v in dumped.items()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(rec, mapping=fields)
            pipe.pexpire(rec, self._ttl_ms)
            pipe.zadd(self._owner(owner), {sid: record.created_at.timestamp()})
            pipe.zadd(self._expiry(owner), {sid: self._deadline()})
            pipe.pexpire(self._owner(owner), self._ttl_ms)
            pipe.pexpire(self._expiry(owner), self._ttl_ms)
            await pipe.execute()
        return record

    async def get(self, session_id: str) -> SessionRecord | None:
        rec, msgs = self._rec(session_id), self._msgs(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(rec)
            pipe.llen(msgs)
            pipe.pexpire(rec, self._ttl_ms)
            pipe.pexpire(msgs, self._ttl_ms)
            fields, count, *_ = await pipe.execute()
        if not fields:
            return None
        record = self._record(fields, count)
        # The owner's index must live as long as its longest-lived session.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._expiry(record.owner), {session_id: self._deadline()}, xx=True)
            pipe.pexpire(self._owner(record.owner), self._ttl_ms)
            pipe.pexpire(self._expiry(record.owner), self._ttl_ms)
            await pipe.execute()
        return record

    async def list(
        self, *, owner: str, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        index = self._owner(owner)
        expired = await self._redis.zrangebyscore(self._expiry(owner), 0, time.time())
        await self._prune(owner, [str(sid) for sid in expired])
        if limit <= 0:
            return [], int(await self._redis.zcard(index))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcard(index)
            pipe.zrevrange(index, offset, offset + limit - 1)
            total, ids = await pipe.execute()
        if not ids:
            return [], int(total)
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(self._rec(sid))
                pipe.llen(self._msgs(sid))
            rows = await pipe.execute()
        items: builtins.list[SessionRecord] = []
        gone: builtins.list[str] = []
        for sid, fields, count in zip(ids, rows[0::2], rows[1::2], strict=True):
            if fields:
                items.append(self._record(fields, count))
            else:  # expired between the prune and the read
                gone.append(sid)
        await self._prune(owner, gone)
        return items, int(total) - len(gone)

    async def _prune(self, owner: str, candidates: builtins.list[str]) -> None:
        if not candidates:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in candidates:
                pipe.exists(self._rec(sid))
            alive = await pipe.execute()
        dead = [sid for sid, exists in zip(candidates, alive, strict=True) if not exists]
        if dead:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._owner(owner), *dead)
                pipe.zrem(self._expiry(owner), *dead)
                await pipe.execute()

    async def delete(self, session_id: str) -> bool:
        rec = self._rec(session_id)
        owner = await self._redis.hget(rec, "owner")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(rec)
            pipe.delete(self._msgs(session_id), self._lock(session_id))
            if owner is not None:
                pipe.zrem(self._owner(str(owner)), session_id)
                pipe.zrem(self._expiry(str(owner)), session_id)
            results = await pipe.execute()
        return bool(results[0])

    async def messages(
        self, session_id: str, *, limit: int, offset: int
    ) -> builtins.list[ChatMessage]:
        if limit <= 0:
            return []
        rows = await self._redis.lrange(self._msgs(session_id), offset, offset + limit - 1)
        return [ChatMessage.model_validate_json(raw) for raw in rows]

    async def append(self, session_id: str, messages: builtins.list[ChatMessage]) -> None:
        rec = self._rec(session_id)
        found = await self._redis.hget(rec, "owner")
        if found is None:
            raise SessionNotFoundError(session_id)
        owner = str(found)
        # More than max_messages in one batch: the older ones would be trimmed at once anyway.
        payload = [m.model_dump_json(exclude_none=True) for m in messages[-self._max_messages :]]
        keys = [rec, self._msgs(session_id), self._owner(owner), self._expiry(owner)]
        args: builtins.list[EncodableT] = [
            owner,
            self._ttl_ms,
            self._max_messages,
            utcnow().isoformat(),
            self._deadline(),
        ]
        appended = await self._append(keys=keys, args=[*args, session_id, *payload])
        if not appended:  # deleted or expired since the HGET
            raise SessionNotFoundError(session_id)

    async def acquire_run_lock(self, session_id: str, *, run_id: str, ttl_seconds: int) -> bool:
        return bool(await self._redis.set(self._lock(session_id), run_id, nx=True, ex=ttl_seconds))

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        await self._release(keys=[self._lock(session_id)], args=[run_id])


def build_session_store(settings: Settings, redis: Redis | None) -> SessionStore:
    if redis is None:
        return MemorySessionStore(
            max_messages=settings.SESSION_MAX_MESSAGES, ttl_seconds=settings.SESSION_TTL_SECONDS
        )
    return RedisSessionStore(
        redis,
        prefix=settings.REDIS_KEY_PREFIX,
        max_messages=settings.SESSION_MAX_MESSAGES,
        ttl_seconds=settings.SESSION_TTL_SECONDS,
    )

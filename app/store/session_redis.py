"""Redis session store, shared by every replica.

Layout under ``{REDIS_KEY_PREFIX}sessions:``
  ``rec:<id>``             hash: id, owner, agent, created_at, updated_at (ISO 8601)
  ``msgs:<id>``            list of ChatMessage JSON, oldest first, trimmed to ``max_messages``
  ``lock:<id>``            string: the run id holding the session, EX = the run's lock TTL
  ``queue:<id>``           sorted set of run ids waiting for the lock (tickets); score =
                           band + arrival: interrupting runs in [1, 2**40), enqueued runs in
                           [2**40, 2**41), so the lowest score is served first
  ``ticket:<id>:<run>``    string "1", PX = the ticket TTL: the waiter is alive while it exists
                           (every poll refreshes it); the queue key lives as long as its
                           longest-lived ticket
  ``owner:<owner>``        sorted set of the owner's session ids, score = created_at (listing)
  ``expiry:<owner>``       sorted set of the same ids, score = expiry deadline (cheap pruning)
Every read through ``get`` and every ``append`` pushes the expiry of rec/msgs/owner/expiry
forward, so an idle session disappears as a whole. ``message_count`` is the length of the kept
history. Check-then-write steps are Lua scripts (``session_scripts``): ``append``, the lock's
acquire/release, a waiter's poll (join or refresh its ticket, drop dead tickets at the head,
take the lock when free and first) and its abandon; one script is one atomic step, so two
replicas polling at once never both take the lock nor reorder the queue.
"""

from __future__ import annotations

import builtins
import time
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from app.core.clock import utcnow
from app.llm.types import ChatMessage
from app.store import session_scripts as scripts
from app.store.sessions import SessionNotFoundError, SessionRecord, new_session_id


class RedisSessionStore:
    """Shared backend; see the module docstring for the key layout."""

    def __init__(self, redis: Redis, *, prefix: str, max_messages: int, ttl_seconds: float) -> None:
        self._redis = redis
        self._prefix = f"{prefix}sessions:"
        self._max_messages = max_messages
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._release = redis.register_script(scripts.RELEASE_LOCK)
        self._acquire = redis.register_script(scripts.ACQUIRE_LOCK)
        self._take_turn = redis.register_script(scripts.TAKE_TURN)
        self._abandon = redis.register_script(scripts.ABANDON_TURN)
        self._append = redis.register_script(scripts.APPEND)
        self._create_if_absent = redis.register_script(scripts.CREATE_IF_ABSENT)

    def _rec(self, session_id: str) -> str:
        return f"{self._prefix}rec:{session_id}"

    def _msgs(self, session_id: str) -> str:
        return f"{self._prefix}msgs:{session_id}"

    def _lock(self, session_id: str) -> str:
        return f"{self._prefix}lock:{session_id}"

    def _queue(self, session_id: str) -> str:
        return f"{self._prefix}queue:{session_id}"

    def _tickets(self, session_id: str) -> str:
        return f"{self._prefix}ticket:{session_id}:"

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

    async def _create(self, owner: str, agent: str, lock: tuple[str, int] | None) -> SessionRecord:
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
            if lock is not None:  # a brand-new id: nobody else can hold or queue for it
                pipe.set(self._lock(sid), lock[0], ex=lock[1])
            await pipe.execute()
        return record

    async def create(self, *, owner: str, agent: str) -> SessionRecord:
        return await self._create(owner, agent, None)

    async def create_held(
        self, *, owner: str, agent: str, run_id: str, ttl_seconds: int
    ) -> SessionRecord:
        return await self._create(owner, agent, (run_id, ttl_seconds))

    async def create_with_id(
        self, *, session_id: str, owner: str, agent: str
    ) -> SessionRecord | None:
        record = SessionRecord(id=session_id, owner=owner, agent=agent)
        dumped = record.model_dump(mode="json", exclude={"message_count"}, exclude_none=True)
        pairs = [str(item) for key, value in dumped.items() for item in (key, value)]
        keys = [self._rec(session_id), self._msgs(session_id), self._owner(owner)]
        keys.append(self._expiry(owner))
        args: builtins.list[EncodableT] = [
            self._ttl_ms,
            session_id,
            record.created_at.timestamp(),
            self._deadline(),
            *pairs,
        ]
        created = await self._create_if_absent(keys=keys, args=args)
        return record if created else None

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
        # The queue stays: its waiters find the session gone once served, and it expires.
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

    # -- run lock and queue ------------------------------------------------------------------

    async def acquire_run_lock(self, session_id: str, *, run_id: str, ttl_seconds: int) -> bool:
        keys = [self._lock(session_id), self._queue(session_id)]
        args: builtins.list[EncodableT] = [run_id, ttl_seconds, self._tickets(session_id)]
        return bool(await self._acquire(keys=keys, args=args))

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        await self._release(keys=[self._lock(session_id)], args=[run_id])

    async def run_lock_holder(self, session_id: str) -> str | None:
        holder = await self._redis.get(self._lock(session_id))
        return None if holder is None else str(holder)

    async def take_turn(
        self,
        session_id: str,
        *,
        run_id: str,
        ttl_seconds: int,
        ahead: bool,
        ticket_seconds: float,
    ) -> bool:
        band = (
            (scripts.AHEAD_BAND, scripts.QUEUED_BAND)
            if ahead
            else (scripts.QUEUED_BAND, scripts.END_BAND)
        )
        keys = [self._lock(session_id), self._queue(session_id)]
        ticket_ms = max(1, int(ticket_seconds * 1000))
        args: builtins.list[EncodableT] = [
            run_id,
            ttl_seconds,
            ticket_ms,
            self._tickets(session_id),
            *band,
        ]
        return bool(await self._take_turn(keys=keys, args=args))

    async def abandon_turn(self, session_id: str, *, run_id: str) -> None:
        ticket = self._tickets(session_id) + run_id
        keys = [self._lock(session_id), self._queue(session_id), ticket]
        await self._abandon(keys=keys, args=[run_id])

    async def waiting(self, session_id: str) -> builtins.list[str]:
        queued = [str(r) for r in await self._redis.zrange(self._queue(session_id), 0, -1)]
        if not queued:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id in queued:
                pipe.exists(self._tickets(session_id) + run_id)
            alive = await pipe.execute()
        return [run_id for run_id, live in zip(queued, alive, strict=True) if live]

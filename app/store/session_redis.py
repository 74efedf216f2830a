"""Redis session store, shared by every replica.

Layout under ``{REDIS_KEY_PREFIX}sessions:``; a session's keys share its hash tag and an
owner's index keys share the owner's, so each lives in one slot on a cluster:
  ``{<id>}:rec``         hash: id, owner, agent, created_at, updated_at (ISO 8601)
  ``{<id>}:msgs``        list of ChatMessage JSON, oldest first, trimmed to ``max_messages``
  ``{<id>}:lock``        string: the run id holding the session, EX = the run's lock TTL
  ``{<id>}:queue``       sorted set of run ids waiting for the lock (tickets); score =
                         band + arrival: interrupting runs in [1, 2**40), enqueued runs in
                         [2**40, 2**41), so the lowest score is served first
  ``{<id>}:tickets``     sorted set of the same run ids, score = the waiter's deadline (ms,
                         Redis clock): the waiter is alive until then (every poll pushes it);
                         queue and tickets live as long as their longest-lived ticket
  ``{<id>}:state``       framework state (``app.store.agent_state``)
  ``owner:{<owner>}``    sorted set of the owner's session ids, score = created_at (listing)
  ``expiry:{<owner>}``   sorted set of the same ids, score = expiry deadline (cheap pruning)
Every read through ``get`` and every ``append`` pushes the expiry of rec/msgs and of the
owner's indexes forward, so an idle session disappears as a whole. ``message_count`` is the
length of the kept history. Check-then-write steps are Lua scripts (``session_scripts``) on
one session's keys: ``append``, the lock's acquire/release, a waiter's poll (join or refresh
its ticket, drop dead tickets at the head, take the lock when free and first) and its
abandon; one script is one atomic step, so two replicas polling at once never both take the
lock nor reorder the queue.

The owner's indexes are another entity (another slot), written by separate commands in an
order that never leaves a live session unlisted: the index entry is written before the
record and removed after it. A crash in between leaves an entry without a record, which the
listing drops (``_prune``); a listing racing a creation leaves entries younger than
``CREATING_SECONDS`` alone, since their record may be on its way. ``get`` and ``append``
re-add their session to the indexes, which heals an entry lost any other way.
"""

from __future__ import annotations

import builtins
import time
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from app.core.clock import utcnow
from app.core.lifecycle import raise_if_cancelling
from app.llm.types import ChatMessage
from app.store import session_scripts as scripts
from app.store.keyspace import tag
from app.store.sessions import SessionNotFoundError, SessionRecord, new_session_id

# An index entry is written before its record: a listing must not prune an entry this young
# for a missing record (its creation may still be under way), far more than a creation takes.
CREATING_SECONDS = 60.0


class SessionKeys:
    """Key names: a session's keys share its hash tag, an owner's index keys share the owner's."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}sessions:"

    def _of(self, session_id: str, part: str) -> str:
        return f"{self.base}{tag(session_id)}:{part}"

    def rec(self, session_id: str) -> str:
        return self._of(session_id, "rec")

    def msgs(self, session_id: str) -> str:
        return self._of(session_id, "msgs")

    def lock(self, session_id: str) -> str:
        return self._of(session_id, "lock")

    def queue(self, session_id: str) -> str:
        return self._of(session_id, "queue")

    def tickets(self, session_id: str) -> str:
        return self._of(session_id, "tickets")

    def state(self, session_id: str) -> str:
        return self._of(session_id, "state")

    def owner(self, owner: str) -> str:
        return f"{self.base}owner:{tag(owner)}"

    def expiry(self, owner: str) -> str:
        return f"{self.base}expiry:{tag(owner)}"


class RedisSessionStore:
    """Shared backend; see the module docstring for the key layout."""

    def __init__(self, redis: Redis, *, prefix: str, max_messages: int, ttl_seconds: float) -> None:
        self._redis = redis
        self.keys = SessionKeys(prefix)
        self._max_messages = max_messages
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._release = redis.register_script(scripts.RELEASE_LOCK)
        self._acquire = redis.register_script(scripts.ACQUIRE_LOCK)
        self._take_turn = redis.register_script(scripts.TAKE_TURN)
        self._abandon = redis.register_script(scripts.ABANDON_TURN)
        self._waiting = redis.register_script(scripts.WAITING)
        self._append = redis.register_script(scripts.APPEND)
        self._create_if_absent = redis.register_script(scripts.CREATE_IF_ABSENT)

    def _deadline(self) -> float:
        # Wall clock, only used to pick pruning candidates; each is confirmed against its
        # record, so clock skew between replicas delays pruning but never removes a live session.
        return time.time() + self._ttl_ms / 1000

    @staticmethod
    def _record(fields: dict[str, Any], count: int) -> SessionRecord:
        return SessionRecord.model_validate({**fields, "message_count": count})

    async def _index(self, owner: str, session_id: str, created_at: float) -> bool:
        """List ``session_id`` under its owner (kept if there already) and push the expiry of
        the owner's indexes; one MULTI on the owner's slot. True when the entry is new."""
        listing, expiry = self.keys.owner(owner), self.keys.expiry(owner)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(listing, {session_id: created_at}, nx=True)
            pipe.zadd(expiry, {session_id: self._deadline()})
            pipe.pexpire(listing, self._ttl_ms)
            pipe.pexpire(expiry, self._ttl_ms)
            added, *_ = await pipe.execute()
        return bool(added)

    async def _unindex(self, owner: str, session_ids: builtins.list[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.owner(owner), *session_ids)
            pipe.zrem(self.keys.expiry(owner), *session_ids)
            await pipe.execute()

    async def _create(self, owner: str, agent: str, lock: tuple[str, int] | None) -> SessionRecord:
        record = SessionRecord(id=new_session_id(), owner=owner, agent=agent)
        sid, rec = record.id, self.keys.rec(record.id)
        dumped = record.model_dump(mode="json", exclude={"message_count"}, exclude_none=True)
        fields: dict[FieldT, EncodableT] = {k: str(v) for k, v in dumped.items()}
        await self._index(owner, sid, record.created_at.timestamp())  # before the record
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(rec, mapping=fields)
            pipe.pexpire(rec, self._ttl_ms)
            if lock is not None:  # a brand-new id: nobody else can hold or queue for it
                pipe.set(self.keys.lock(sid), lock[0], ex=lock[1])
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
        created_at = record.created_at.timestamp()
        added = await self._index(owner, session_id, created_at)
        keys = [self.keys.rec(session_id), self.keys.msgs(session_id)]
        if await self._create_if_absent(keys=keys, args=[self._ttl_ms, *pairs]):
            if not added:  # an entry left by an expired session of ours: list it as new
                await self._redis.zadd(self.keys.owner(owner), {session_id: created_at}, xx=True)
            return record
        # Taken by a live session. Another owner's: take back the entry just made (the
        # listing skips foreign entries anyway). Ours: the entry is right where it is.
        holder = await self._redis.hget(keys[0], "owner")
        if added and holder != owner:
            await self._unindex(owner, [session_id])
        return None

    async def get(self, session_id: str) -> SessionRecord | None:
        rec, msgs = self.keys.rec(session_id), self.keys.msgs(session_id)
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
        await self._index(record.owner, session_id, record.created_at.timestamp())
        return record

    async def list(
        self, *, owner: str, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        index = self.keys.owner(owner)
        expired = await self._redis.zrangebyscore(self.keys.expiry(owner), 0, time.time())
        await self._prune(owner, [str(sid) for sid in expired])
        if limit <= 0:
            return [], int(await self._redis.zcard(index))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcard(index)
            pipe.zrevrange(index, offset, offset + limit - 1, withscores=True)
            total, entries = await pipe.execute()
        if not entries:
            return [], int(total)
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot per session
            for sid, _ in entries:
                pipe.hgetall(self.keys.rec(sid))
                pipe.llen(self.keys.msgs(sid))
            rows = await pipe.execute()
        items: builtins.list[SessionRecord] = []
        gone: builtins.list[str] = []
        stale: builtins.list[str] = []
        settled = time.time() - CREATING_SECONDS
        for (sid, created), fields, count in zip(entries, rows[0::2], rows[1::2], strict=True):
            if fields and fields.get("owner") == owner:
                items.append(self._record(fields, count))
                continue
            gone.append(sid)  # expired since the prune, being created, or another owner's id
            if created < settled:
                stale.append(sid)
        await self._prune(owner, stale)
        return items, int(total) - len(gone)

    async def _prune(self, owner: str, candidates: builtins.list[str]) -> None:
        """Drop the owner's entries whose record is gone (or another owner's)."""
        if not candidates:
            return
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot per session
            for sid in candidates:
                pipe.hget(self.keys.rec(sid), "owner")
            holders = await pipe.execute()
        dead = [sid for sid, holder in zip(candidates, holders, strict=True) if holder != owner]
        if dead:
            await self._unindex(owner, dead)

    async def delete(self, session_id: str) -> bool:
        # The queue stays: its waiters find the session gone once served, and it expires.
        rec = self.keys.rec(session_id)
        owner = await self._redis.hget(rec, "owner")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(rec)
            pipe.delete(self.keys.msgs(session_id), self.keys.lock(session_id))
            deleted, _ = await pipe.execute()
        if owner is not None:  # after the record: see the module docstring
            await self._unindex(str(owner), [session_id])
        return bool(deleted)

    async def messages(
        self, session_id: str, *, limit: int, offset: int
    ) -> builtins.list[ChatMessage]:
        if limit <= 0:
            return []
        rows = await self._redis.lrange(self.keys.msgs(session_id), offset, offset + limit - 1)
        return [ChatMessage.model_validate_json(raw) for raw in rows]

    async def append(self, session_id: str, messages: builtins.list[ChatMessage]) -> None:
        rec = self.keys.rec(session_id)
        found, created_at = await self._redis.hmget(rec, ["owner", "created_at"])
        if found is None or created_at is None:
            raise SessionNotFoundError(session_id)
        owner = str(found)
        # Before the record, so the index outlives it: see the module docstring.
        await self._index(owner, session_id, datetime.fromisoformat(str(created_at)).timestamp())
        # More than max_messages in one batch: the older ones would be trimmed at once anyway.
        payload = [m.model_dump_json(exclude_none=True) for m in messages[-self._max_messages :]]
        args: builtins.list[EncodableT] = [
            owner,
            self._ttl_ms,
            self._max_messages,
            utcnow().isoformat(),
        ]
        keys = [rec, self.keys.msgs(session_id)]
        appended = await self._append(keys=keys, args=[*args, *payload])
        if not appended:  # deleted or expired since the HMGET
            raise SessionNotFoundError(session_id)

    # -- run lock and queue ------------------------------------------------------------------

    def _turn_keys(self, session_id: str) -> builtins.list[str]:
        keys = self.keys
        return [keys.lock(session_id), keys.queue(session_id), keys.tickets(session_id)]

    async def acquire_run_lock(self, session_id: str, *, run_id: str, ttl_seconds: int) -> bool:
        keys = self._turn_keys(session_id)
        return bool(await self._acquire(keys=keys, args=[run_id, ttl_seconds]))

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        await self._release(keys=[self.keys.lock(session_id)], args=[run_id])

    async def run_lock_holder(self, session_id: str) -> str | None:
        holder = await self._redis.get(self.keys.lock(session_id))
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
        ticket_ms = max(1, int(ticket_seconds * 1000))
        args: builtins.list[EncodableT] = [run_id, ttl_seconds, ticket_ms, *band]
        taken = await self._take_turn(keys=self._turn_keys(session_id), args=args)
        # A waiter polls this in a loop until it is served or cancelled: a cancellation that
        # lands as redis-py's send completes is dropped by Python 3.11's asyncio.wait_for
        # (the task still counts it), and the waiter would keep its place in the queue.
        raise_if_cancelling()
        return bool(taken)

    async def abandon_turn(self, session_id: str, *, run_id: str) -> None:
        await self._abandon(keys=self._turn_keys(session_id), args=[run_id])

    async def waiting(self, session_id: str) -> builtins.list[str]:
        keys = [self.keys.queue(session_id), self.keys.tickets(session_id)]
        return [str(run_id) for run_id in await self._waiting(keys=keys)]

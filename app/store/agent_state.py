"""Framework state kept with a session: a LangGraph thread's checkpoints, a LlamaIndex
workflow's context, an SDK's message items. Opaque bytes under a name, per session.

Redis layout: one hash ``{REDIS_KEY_PREFIX}sessions:{<session_id>}:state`` (field = name,
value base64; the session's hash tag, ``app.store.session_redis``), its expiry pushed to
SESSION_TTL_SECONDS on every write, so it lives as long as an active session and goes with
an idle one; deleting the session deletes it too.
"""

from __future__ import annotations

import base64
import time
from typing import Protocol

from redis.asyncio import Redis

from app.store.session_redis import SessionKeys


class AgentStateStore(Protocol):
    async def load(self, session_id: str, name: str) -> bytes | None: ...

    async def save(self, session_id: str, name: str, value: bytes) -> None: ...

    async def drop(self, session_id: str) -> None: ...


class MemoryAgentStateStore:
    def __init__(self, *, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._items: dict[str, tuple[float, dict[str, bytes]]] = {}

    async def load(self, session_id: str, name: str) -> bytes | None:
        found = self._items.get(session_id)
        if found is None or found[0] < time.monotonic():
            self._items.pop(session_id, None)
            return None
        return found[1].get(name)

    async def save(self, session_id: str, name: str, value: bytes) -> None:
        _, values = self._items.get(session_id, (0.0, {}))
        values[name] = value
        self._items[session_id] = (time.monotonic() + self._ttl, values)

    async def drop(self, session_id: str) -> None:
        self._items.pop(session_id, None)


class RedisAgentStateStore:
    def __init__(self, redis: Redis, *, prefix: str, ttl_seconds: float) -> None:
        self._redis = redis
        self._keys = SessionKeys(prefix)
        self._ttl_ms = max(1, int(ttl_seconds * 1000))

    def key(self, session_id: str) -> str:
        return self._keys.state(session_id)

    async def load(self, session_id: str, name: str) -> bytes | None:
        value = await self._redis.hget(self.key(session_id), name)
        # The shared client decodes replies as text: values travel as base64.
        return None if value is None else base64.b64decode(value)

    async def save(self, session_id: str, name: str, value: bytes) -> None:
        key = self.key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, name, base64.b64encode(value).decode())
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def drop(self, session_id: str) -> None:
        await self._redis.delete(self.key(session_id))


class SessionState:
    """One session's framework state, as an agent sees it (``ctx.state``)."""

    def __init__(self, store: AgentStateStore, session_id: str) -> None:
        self._store = store
        self.session_id = session_id

    async def load(self, name: str) -> bytes | None:
        return await self._store.load(self.session_id, name)

    async def save(self, name: str, value: bytes) -> None:
        await self._store.save(self.session_id, name, value)

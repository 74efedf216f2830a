"""Session store backends: in-memory (one process) and Redis (shared by every replica).

Both honour ``app.store.sessions.SessionStore`` and are tested by the same contract tests;
the Redis key layout is documented in ``app.store.session_redis``.
"""

from __future__ import annotations

from redis.asyncio import Redis

from app.core.config import Settings
from app.store.agent_state import AgentStateStore, MemoryAgentStateStore, RedisAgentStateStore
from app.store.session_memory import MemorySessionStore
from app.store.session_redis import RedisSessionStore
from app.store.sessions import SessionNotFoundError, SessionStore, new_session_id

__all__ = [
    "MemorySessionStore",
    "RedisSessionStore",
    "SessionNotFoundError",
    "build_agent_state_store",
    "build_session_store",
    "new_session_id",
]


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


def build_agent_state_store(settings: Settings, redis: Redis | None) -> AgentStateStore:
    if redis is None:
        return MemoryAgentStateStore(ttl_seconds=settings.SESSION_TTL_SECONDS)
    return RedisAgentStateStore(
        redis, prefix=settings.REDIS_KEY_PREFIX, ttl_seconds=settings.SESSION_TTL_SECONDS
    )

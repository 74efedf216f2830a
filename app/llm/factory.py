"""Build the app's one LLM client from Settings, once, in the lifespan; close it after.

llm = build_llm(settings, redis)   # redis: the app's client, or None (embedded default)
...
await llm.aclose()                 # closes the provider's HTTP client; not the Redis client
"""

from __future__ import annotations

from redis.asyncio import Redis

from app.core.config import Settings
from app.llm.cache import CachedLLM
from app.llm.cache_store import CacheStore, MemoryCacheStore, NearCacheStore, RedisCacheStore
from app.llm.providers import build_provider


def build_cache_store(settings: Settings, redis: Redis | None) -> CacheStore:
    local_chars = settings.CACHE_LOCAL_MAX_MB * 2**20
    if redis is None:
        return MemoryCacheStore(max_chars=local_chars)
    shared = RedisCacheStore(redis, prefix=f"{settings.REDIS_KEY_PREFIX}llmcache:")
    if settings.CACHE_LOCAL_SECONDS <= 0:
        return shared
    return NearCacheStore(
        shared,
        local_seconds=settings.CACHE_LOCAL_SECONDS,
        max_entries=settings.CACHE_LOCAL_MAX_ENTRIES,
        max_chars=local_chars,
    )


def build_llm(settings: Settings, redis: Redis | None) -> CachedLLM:
    # The provider's own defaults (e.g. OPENAI_TEMPERATURE) shape the cache key: CachedLLM
    # reads them from the provider.
    return CachedLLM(
        build_provider(settings),
        store=build_cache_store(settings, redis),
        ttl=settings.CACHE_TTL,
        enabled=settings.CACHE_ENABLED,
        scope=settings.CACHE_SCOPE,
    )

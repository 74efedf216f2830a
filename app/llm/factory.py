"""Build the app's one LLM client from Settings, once, in the lifespan; close it after.

llm = build_llm(settings, redis)   # redis: the app's client, or None (embedded default)
...
await llm.aclose()                 # closes the provider's HTTP client; not the Redis client
"""

from __future__ import annotations

from redis.asyncio import Redis

from app.core.config import Settings
from app.llm.cache import CachedLLM, CacheStore, MemoryCacheStore, RedisCacheStore
from app.llm.offline import OfflineProvider
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.protocol import LLMProvider


def build_provider(settings: Settings) -> LLMProvider:
    if settings.LLM_PROVIDER == "openai":
        return OpenAICompatProvider.from_settings(settings)
    return OfflineProvider(
        latency_ms=settings.OFFLINE_LATENCY_MS,
        tokens_per_second=settings.OFFLINE_TOKENS_PER_SECOND,
        response_tokens=settings.OFFLINE_RESPONSE_TOKENS,
    )


def build_cache_store(settings: Settings, redis: Redis | None) -> CacheStore:
    if redis is None:
        return MemoryCacheStore()
    return RedisCacheStore(redis, prefix=f"{settings.REDIS_KEY_PREFIX}llmcache:")


def build_llm(settings: Settings, redis: Redis | None) -> CachedLLM:
    openai = settings.LLM_PROVIDER == "openai"
    return CachedLLM(
        build_provider(settings),
        store=build_cache_store(settings, redis),
        ttl=settings.CACHE_TTL,
        enabled=settings.CACHE_ENABLED,
        # OPENAI_* defaults apply to requests that leave them open; the offline model ignores them.
        default_temperature=settings.OPENAI_TEMPERATURE if openai else None,
        default_max_tokens=settings.OPENAI_MAX_TOKENS if openai else None,
    )

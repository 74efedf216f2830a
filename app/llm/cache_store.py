"""Where cached LLM answers live: Redis behind a circuit breaker, or a bounded in-process LRU.

A broken Redis never fails a request: every error or timeout raises ``CacheUnavailable``,
which CachedLLM counts as a miss, and the breaker skips a dead Redis without waiting until a
probe after ``reset_timeout`` finds it back (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis

from app.core.circuit_breaker import CircuitBreaker

log = structlog.get_logger(__name__)
LOCAL_MAX_CHARS = 64 * 2**20  # what CACHE_LOCAL_MAX_MB defaults to


class CacheUnavailable(Exception):
    """The cache backend could not answer; the caller treats it as a miss."""


class CacheStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: int) -> None: ...


class SharedCacheStore(CacheStore, Protocol):
    async def get_with_ttl(self, key: str) -> tuple[str | None, float]:
        """The entry and the seconds it has left (0 when none)."""
        ...


class MemoryCacheStore:
    """Bounded LRU with per-entry expiry: the embedded default (one process).

    Bounded in entries and in characters held: a few megabyte-long answers must not pin
    hundreds of megabytes, and an answer larger than the whole budget is not kept at all.
    """

    def __init__(self, *, max_entries: int = 1024, max_chars: int = LOCAL_MAX_CHARS) -> None:
        self._max = max_entries
        self._max_chars = max_chars
        self._chars = 0
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._drop(key)
        if len(value) > self._max_chars:
            return
        self._entries[key] = (time.monotonic() + ttl, value)
        self._chars += len(value)
        while len(self._entries) > self._max or self._chars > self._max_chars:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._chars -= len(evicted)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._chars -= len(entry[1])


class RedisCacheStore:
    """Redis storage behind a circuit breaker; every failure raises CacheUnavailable."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        failure_threshold: int = 3,
        reset_timeout: float = 2.0,
        op_timeout: float = 0.5,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._op_timeout = op_timeout  # a backstop in case the client has no socket timeouts
        self.breaker = CircuitBreaker(
            failure_threshold=failure_threshold, reset_timeout=reset_timeout
        )

    async def get(self, key: str) -> str | None:
        raw = await self._call(lambda: self._redis.get(self._prefix + key))
        if isinstance(raw, bytes):
            return raw.decode()
        return raw if isinstance(raw, str) else None

    async def get_with_ttl(self, key: str) -> tuple[str | None, float]:
        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._prefix + key)
                pipe.pttl(self._prefix + key)
                return await pipe.execute()

        raw, pttl = await self._call(read)
        if isinstance(raw, bytes):
            raw = raw.decode()
        if not isinstance(raw, str):
            return None, 0.0
        return raw, max(0.0, pttl / 1000) if isinstance(pttl, int) else 0.0

    async def set(self, key: str, value: str, ttl: int) -> None:
        await self._call(lambda: self._redis.set(self._prefix + key, value, ex=ttl))

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        if not self.breaker.allow():
            raise CacheUnavailable("circuit open")
        recovering = self.breaker.state != "closed"
        try:
            async with asyncio.timeout(self._op_timeout):
                result = await command()
        except asyncio.CancelledError:
            # A probe that never reports would leave the breaker half-open (skipping) forever.
            if self.breaker.state == "half_open":
                self.breaker.record_failure()
            raise
        except Exception as exc:  # refused, timeout, pool exhausted, protocol: all a miss
            if self.breaker.record_failure():
                log.warning("llm_cache_backend_down", error=type(exc).__name__)
            raise CacheUnavailable(type(exc).__name__) from exc
        self.breaker.record_success()
        if recovering:
            log.info("llm_cache_backend_recovered")
        return result


class NearCacheStore:
    """Redis, with each process keeping the answers it has read or written for a few seconds.

    An entry is the answer to exactly the request its key hashes (and partition), never
    changed in place, so a copy is as good as the original while the original lives: the
    local copy expires at the sooner of ``local_seconds`` and the Redis entry's own expiry
    (read with it in the same round trip). A hit served locally costs no round trip; what
    another replica writes is seen on the next local miss. A Redis failure raises as before.
    """

    def __init__(
        self,
        shared: SharedCacheStore,
        *,
        local_seconds: float,
        max_entries: int,
        max_chars: int = LOCAL_MAX_CHARS,
    ) -> None:
        self._shared = shared
        self._local = MemoryCacheStore(max_entries=max_entries, max_chars=max_chars)
        self._local_seconds = local_seconds
        self.local_hits = 0

    async def get(self, key: str) -> str | None:
        found = await self._local.get(key)
        if found is not None:
            self.local_hits += 1
            return found
        value, left = await self._shared.get_with_ttl(key)
        if value is not None and left > 0:
            await self._local.set(key, value, min(self._local_seconds, left))
        return value

    async def set(self, key: str, value: str, ttl: int) -> None:
        await self._shared.set(key, value, ttl)
        await self._local.set(key, value, min(self._local_seconds, ttl))

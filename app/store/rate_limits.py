"""Rate-limit decisions on ``limits.aio`` (slowapi's engine), shared across replicas via Redis.

slowapi itself blocks the event loop on Redis and truncates SSE (PITFALLS.md), so the ASGI
part is ours and the counting is limits'. The storage shares the app's redis-py pool, so its
commands get the same short timeouts. A circuit breaker keeps a dead Redis from adding a
timeout to every request; the configured policy decides what happens meanwhile.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import STRATEGIES, RateLimiter
from redis.asyncio import Redis

from app.config import Settings
from app.observability import metrics
from app.store.circuit_breaker import CircuitBreaker

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window frees capacity
    degraded: bool = False  # the backend failed and the policy decided

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_after))
        return headers


class RateLimitBackendDown(Exception):
    """Raised (fail-closed policy) when no decision can be made."""


class RequestRateLimiter:
    def __init__(self, *, settings: Settings, redis: Redis | None) -> None:
        self._settings = settings
        self._fail_open = settings.RATE_LIMIT_FAIL_OPEN
        self._default = settings.default_rate_limit
        self._routes = settings.route_rate_limits
        storage: Storage
        if redis is not None and settings.REDIS_URL:
            storage = RedisStorage(
                "async+" + settings.REDIS_URL,
                implementation="redispy",
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
                key_prefix=f"{settings.REDIS_KEY_PREFIX}ratelimit",
            )
        else:
            storage = MemoryStorage()
        strategy = STRATEGIES[settings.RATE_LIMIT_STRATEGY]
        # STRATEGIES is typed with the abstract base; every entry in it is concrete.
        self._limiter: RateLimiter = strategy(storage)  # type: ignore[abstract]
        self._breaker = CircuitBreaker(failure_threshold=3, reset_timeout=2.0)

    def limit_for(self, method: str, route: str) -> RateLimitItem:
        return self._routes.get(f"{method} {route}", self._default)

    async def check(self, *, identity: str, method: str, route: str) -> Decision:
        item = self.limit_for(method, route)
        if not self._breaker.allow():
            return self._degraded(item)
        try:
            allowed = await self._limiter.hit(item, identity, method, route)
            stats = await self._limiter.get_window_stats(item, identity, method, route)
        except Exception as exc:  # any backend failure: timeouts, refused, script errors
            if self._breaker.record_failure():
                log.warning(
                    "rate_limit_backend_down",
                    error=type(exc).__name__,
                    policy="fail_open" if self._fail_open else "fail_closed",
                )
            return self._degraded(item)
        self._breaker.record_success()
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        if not allowed and reset_after == 0:
            reset_after = 1
        return Decision(
            allowed=allowed, limit=item.amount, remaining=stats.remaining, reset_after=reset_after
        )

    def _degraded(self, item: RateLimitItem) -> Decision:
        outcome = "allowed" if self._fail_open else "rejected"
        metrics.RATE_LIMIT_BACKEND_ERRORS.labels(outcome=outcome).inc()
        if not self._fail_open:
            raise RateLimitBackendDown
        return Decision(
            allowed=True, limit=item.amount, remaining=item.amount, reset_after=0, degraded=True
        )

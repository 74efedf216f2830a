"""Failed authentications per client IP, counted with ``limits.aio`` (in Redis when set).

Only failures are counted (the middleware calls ``record_failure`` on a 401 to a request that
carried credentials, or to the login route), but every credential from an IP over the limit is
refused before it is checked, so a guesser learns nothing more until the window frees up.

The check runs on every request that carries credentials, so its answer is kept locally for a
moment: "blocked" until the window's reset, "not blocked" for at most ``CLEAR_SECONDS`` (a
failure counted elsewhere in that moment reaches this process with the next failure here,
whose ``hit`` answers with the shared count). Redis down: the same circuit breaker and
RATE_LIMIT_FAIL_OPEN policy as the request rate limiter.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import structlog
from limits import RateLimitItem
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter
from redis.asyncio import Redis

from app.core.circuit_breaker import CircuitBreaker
from app.core.config import Settings
from app.observability import metrics
from app.store.limits_storage import build_limits_storage, close_limits_storage

log = structlog.get_logger(__name__)


class AuthFailureBackendDown(Exception):
    """Raised (fail-closed policy) when the failure count cannot be read."""


class AuthFailureLimiter:
    CLEAR_SECONDS = 1.0
    MAX_REMEMBERED = 10_000

    def __init__(self, *, settings: Settings, item: RateLimitItem, redis: Redis | None) -> None:
        self.item = item
        self._storage = build_limits_storage(
            settings, redis, key_prefix=f"{settings.REDIS_KEY_PREFIX}authfail"
        )
        # A moving window: a burst at a window edge cannot buy a second allowance.
        self._limiter: RateLimiter = MovingWindowRateLimiter(self._storage)
        self._fail_open = settings.RATE_LIMIT_FAIL_OPEN
        self._breaker = CircuitBreaker(failure_threshold=3, reset_timeout=2.0)
        self._blocked: OrderedDict[str, float] = OrderedDict()  # ip -> monotonic until
        self._clear: OrderedDict[str, float] = OrderedDict()  # ip -> monotonic until

    async def aclose(self) -> None:
        """Close the storage's own Redis clients (a cluster's or Sentinel's)."""
        await close_limits_storage(self._storage)

    async def retry_after(self, ip: str) -> int | None:
        """Seconds until ``ip`` may try credentials again; None when it may now."""
        now = time.monotonic()
        blocked_until = self._blocked.get(ip)
        if blocked_until is not None:
            if blocked_until > now:
                return max(1, math.ceil(blocked_until - now))
            del self._blocked[ip]
        clear_until = self._clear.get(ip)
        if clear_until is not None and clear_until > now:
            return None
        if not self._breaker.allow():
            self._degraded()
            return None
        try:
            allowed = await self._limiter.test(self.item, ip)
            reset_after = 0.0 if allowed else await self._reset_after(ip)
        except Exception as exc:  # any backend failure: timeouts, refused, script errors
            self._backend_failed(exc)
            self._degraded()
            return None
        self._breaker.record_success()
        if allowed:
            self._remember(self._clear, ip, now + self.CLEAR_SECONDS)
            return None
        self._remember(self._blocked, ip, now + reset_after)
        return max(1, math.ceil(reset_after))

    async def record_failure(self, ip: str) -> None:
        """Count one failed authentication; best effort (a dead Redis must not turn a 401
        into a 500: the policy applies at the next check)."""
        self._clear.pop(ip, None)  # the next request from ip asks the shared count again
        if not self._breaker.allow():
            return
        try:
            allowed = await self._limiter.hit(self.item, ip)
            stats = await self._limiter.get_window_stats(self.item, ip)
        except Exception as exc:
            self._backend_failed(exc)
            return
        self._breaker.record_success()
        if not allowed or stats.remaining <= 0:
            reset_after = max(1.0, stats.reset_time - time.time())
            self._remember(self._blocked, ip, time.monotonic() + reset_after)

    async def _reset_after(self, ip: str) -> float:
        stats = await self._limiter.get_window_stats(self.item, ip)
        return max(1.0, stats.reset_time - time.time())

    def _remember(self, memo: OrderedDict[str, float], ip: str, until: float) -> None:
        memo[ip] = until
        memo.move_to_end(ip)
        while len(memo) > self.MAX_REMEMBERED:
            memo.popitem(last=False)

    def _backend_failed(self, exc: Exception) -> None:
        if self._breaker.record_failure():
            log.warning(
                "auth_failure_limit_backend_down",
                error=type(exc).__name__,
                policy="fail_open" if self._fail_open else "fail_closed",
            )

    def _degraded(self) -> None:
        """Fail open (return: the credentials get checked) or closed (raise)."""
        outcome = "allowed" if self._fail_open else "rejected"
        metrics.RATE_LIMIT_BACKEND_ERRORS.labels(outcome=outcome).inc()
        if not self._fail_open:
            raise AuthFailureBackendDown


def build_auth_failure_limiter(
    settings: Settings, redis: Redis | None
) -> AuthFailureLimiter | None:
    """None when AUTH_FAILURE_LIMIT is empty (or authentication is off)."""
    item = settings.auth_failure_limit
    if item is None or not settings.AUTH_ENABLED:
        return None
    return AuthFailureLimiter(settings=settings, item=item, redis=redis)

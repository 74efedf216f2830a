"""Rate-limit decisions on ``limits.aio`` (slowapi's engine), shared across replicas via Redis.

slowapi itself blocks the event loop on Redis and truncates SSE (docs/decisions.md), so the ASGI
part is ours and the counting is limits'. The storage shares the app's redis-py pool, so its
commands get the same short timeouts. A circuit breaker keeps a dead Redis from adding a
timeout to every request; the configured policy decides what happens meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog
from limits import RateLimitItem
from limits.aio.strategies import STRATEGIES, RateLimiter
from redis.asyncio import Redis

from app.core.circuit_breaker import CircuitBreaker
from app.core.config import Settings
from app.observability import metrics
from app.store.limits_storage import build_limits_storage, close_limits_storage

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


def bucket_identity(principal_id: str | None, client: tuple[str, int] | None) -> str:
    """Whose bucket a request counts in: the verified principal, else the client address.
    The middleware and the WebSocket run starts (app/api/agents_ws.py) both key by this."""
    if principal_id is not None:
        return principal_id
    return f"ip:{client[0]}" if client else "ip:unknown"


@dataclass(slots=True)
class _Reservation:
    """Permits this process took from the shared window in one Redis call."""

    permits: int
    remaining: int  # shared remaining right after the reservation was taken
    reset_time: float  # epoch seconds
    valid_until: float  # monotonic


class RequestRateLimiter:
    """limits.aio decisions, amortised: one Redis call may reserve a small batch.

    Each Redis call costs ~150-300 us of CPU here, more than a bare request. With a high
    limit, a process takes up to RATE_LIMIT_LOCAL_BATCH permits at once (never more than 1%
    of the limit) and spends them locally for at most a second. Reserved permits count in
    the shared window, so the limit is never exceeded; at worst a client is refused a few
    permits early. Limits under 200 are checked in Redis on every request.
    """

    RESERVATION_SECONDS = 1.0
    MAX_RESERVATIONS = 10_000

    def __init__(self, *, settings: Settings, redis: Redis | None) -> None:
        self._settings = settings
        self._batch_max = settings.RATE_LIMIT_LOCAL_BATCH
        self._reservations: OrderedDict[tuple[str, str, str], _Reservation] = OrderedDict()
        # One refill per bucket at a time: concurrent requests wait for it instead of each
        # reserving a batch (which would waste permits and multiply Redis calls).
        self._refills: dict[tuple[str, str, str], asyncio.Future[None]] = {}
        self._fail_open = settings.RATE_LIMIT_FAIL_OPEN
        self._default = settings.default_rate_limit
        self._routes = settings.route_rate_limits
        self._storage = build_limits_storage(
            settings, redis, key_prefix=f"{settings.REDIS_KEY_PREFIX}ratelimit"
        )
        strategy = STRATEGIES[settings.RATE_LIMIT_STRATEGY]
        # STRATEGIES is typed with the abstract base; every entry in it is concrete.
        self._limiter: RateLimiter = strategy(self._storage)  # type: ignore[abstract]
        self._breaker = CircuitBreaker(failure_threshold=3, reset_timeout=2.0)

    async def aclose(self) -> None:
        """Close the storage's own Redis clients (a cluster's or Sentinel's)."""
        await close_limits_storage(self._storage)

    def limit_for(
        self, method: str, route: str, default: RateLimitItem | None = None
    ) -> RateLimitItem:
        """The route's own limit, else ``default`` (a tenant's), else the deployment's."""
        return self._routes.get(f"{method} {route}") or default or self._default

    def _batch(self, item: RateLimitItem) -> int:
        return max(1, min(self._batch_max, item.amount // 100))

    def _spend_reserved(self, key: tuple[str, str, str], item: RateLimitItem) -> Decision | None:
        """Answer from a local reservation, or from a recent refusal (a client hammering a
        full window costs no Redis call until it may have room again)."""
        reservation = self._reservations.get(key)
        if reservation is None:
            return None
        if time.monotonic() >= reservation.valid_until:
            del self._reservations[key]
            return None
        reset_after = max(1, math.ceil(reservation.reset_time - time.time()))
        if reservation.permits == 0:
            return Decision(allowed=False, limit=item.amount, remaining=0, reset_after=reset_after)
        reservation.permits -= 1
        if reservation.permits == 0:
            del self._reservations[key]
        return Decision(
            allowed=True,
            limit=item.amount,
            remaining=reservation.remaining + reservation.permits,
            reset_after=reset_after,
        )

    def _reserve(self, key: tuple[str, str, str], reservation: _Reservation) -> None:
        current = self._reservations.get(key)
        if current is not None and current.permits and reservation.permits:
            reservation.permits += current.permits  # both batches were counted in Redis
        self._reservations[key] = reservation
        self._reservations.move_to_end(key)
        while len(self._reservations) > self.MAX_RESERVATIONS:
            self._reservations.popitem(last=False)

    async def check(
        self, *, identity: str, method: str, route: str, default: RateLimitItem | None = None
    ) -> Decision:
        item = self.limit_for(method, route, default)
        key = (identity, method, route)
        reserved = self._spend_reserved(key, item)
        if reserved is not None:
            return reserved
        # Several waiters wake from one refill: each re-checks, so at most one starts the next.
        while (pending := self._refills.get(key)) is not None:
            await asyncio.shield(pending)
            reserved = self._spend_reserved(key, item)
            if reserved is not None:
                return reserved
        if self._batch(item) == 1:
            return await self._check_in_redis(key, item)
        refill = self._refills[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._check_in_redis(key, item)
        finally:
            del self._refills[key]
            refill.set_result(None)

    async def _check_in_redis(self, key: tuple[str, str, str], item: RateLimitItem) -> Decision:
        if not self._breaker.allow():
            return self._degraded(item)
        batch = self._batch(item)
        try:
            allowed = await self._limiter.hit(item, *key, cost=batch)
            if not allowed and batch > 1:  # not room for a batch: maybe for one
                batch = 1
                allowed = await self._limiter.hit(item, *key)
            stats = await self._limiter.get_window_stats(item, *key)
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
        spare = batch - 1 if allowed else 0
        if spare or not allowed:
            # A refusal is remembered until capacity may free up, at most a second.
            hold = (
                self.RESERVATION_SECONDS if allowed else min(self.RESERVATION_SECONDS, reset_after)
            )
            valid = time.monotonic() + min(hold, item.get_expiry())
            self._reserve(key, _Reservation(spare, stats.remaining, stats.reset_time, valid))
        return Decision(
            allowed=allowed,
            limit=item.amount,
            remaining=stats.remaining + spare,
            reset_after=reset_after,
        )

    def _degraded(self, item: RateLimitItem) -> Decision:
        outcome = "allowed" if self._fail_open else "rejected"
        metrics.RATE_LIMIT_BACKEND_ERRORS.labels(outcome=outcome).inc()
        if not self._fail_open:
            raise RateLimitBackendDown
        return Decision(
            allowed=True, limit=item.amount, remaining=item.amount, reset_after=0, degraded=True
        )

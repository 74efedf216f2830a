"""Per-principal caps on work in flight: slots leased in Redis, shared by every replica.

A principal's slots are one sorted set, ``concurrency:<kind>:<principal>``, of slot ids (run
ids) scored by the expiry of their lease, in Redis server time so the replicas' clocks do not
matter. Acquiring is one Lua script: drop the expired slots, then add ours if there is room.
The process renews every slot it holds each third of the lease; a process that dies stops
renewing, and the next acquire after the lease drops its slots: nothing leaks and nothing has
to clean up after it. ``MemorySlots`` keeps the same rules inside one process, where the
holder and the counter cannot part, so it needs no lease.

Redis down: ``fail_open`` (RATE_LIMIT_FAIL_OPEN) decides, as it does for rate limits: open
lets the run start (the slot is recorded on the next renewal that reaches Redis), closed
refuses it with 503 ``dependency_unavailable``. A circuit breaker keeps a dead Redis from
adding a timeout to every start.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

import structlog
from redis.asyncio import Redis

from app.core.circuit_breaker import CircuitBreaker
from app.core.config import Settings
from app.core.errors import AppError
from app.core.lifecycle import raise_if_cancelling, stop_task
from app.observability import metrics

log = structlog.get_logger(__name__)

# Server time in ms; the slots whose lease has run out go first.
_NOW_AND_PRUNE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
"""
# ARGV: slot, limit, lease ms. 1 = held (new, or already ours), 0 = no room.
_ACQUIRE = (
    _NOW_AND_PRUNE
    + """
local lease = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1])
    or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ms + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease)
  return 1
end
return 0
"""
)
# ARGV: lease ms, slot... A live holder's slot is put back even if its lease lapsed (Redis was
# away longer than the lease): the run is real, so it counts.
_RENEW = (
    _NOW_AND_PRUNE
    + """
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], ms + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""
)


class TooManyConcurrentRuns(AppError):
    status, code = 429, "too_many_concurrent_runs"

    def __init__(self, detail: str, *, limit: int, retry_after: int) -> None:
        super().__init__(
            detail,
            headers={"Retry-After": str(retry_after)},
            extensions={"limit": limit},
        )


class ConcurrencyUnavailable(AppError):
    status, code = 503, "dependency_unavailable"
    detail = "The concurrency limiter is unavailable; retry shortly."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class SlotLimiter(Protocol):
    async def acquire(self, owner: str, slot: str, *, limit: int) -> bool:
        """Take a slot of ``owner``'s if fewer than ``limit`` are held (idempotent per slot).
        False: no room. Raises ConcurrencyUnavailable when Redis is down and the policy is
        fail-closed."""
        ...

    async def release(self, owner: str, slot: str) -> None: ...

    def release_commands(self, owner: str, slot: str) -> list[tuple[str, ...]]:
        """The Redis commands that release the slot, for a caller to send in a pipeline of
        its own (then ``released``); none without Redis."""
        ...

    def released(self, owner: str, slot: str) -> None:
        """The caller's pipeline ran ``release_commands``: forget the slot here."""
        ...

    async def aclose(self) -> None: ...


class MemorySlots:
    """One process's slots: the same rules without Redis (``make run``, tests)."""

    def __init__(self) -> None:
        self._held: defaultdict[str, set[str]] = defaultdict(set)

    async def acquire(self, owner: str, slot: str, *, limit: int) -> bool:
        held = self._held[owner]
        if slot in held or len(held) < limit:
            held.add(slot)
            return True
        if not held:
            del self._held[owner]
        return False

    async def release(self, owner: str, slot: str) -> None:
        self.released(owner, slot)

    def release_commands(self, owner: str, slot: str) -> list[tuple[str, ...]]:
        return []

    def released(self, owner: str, slot: str) -> None:
        held = self._held.get(owner)
        if held is not None:
            held.discard(slot)
            if not held:
                del self._held[owner]

    async def aclose(self) -> None:
        self._held.clear()


class RedisSlots:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        kind: str,
        lease_seconds: float,
        fail_open: bool,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}concurrency:{kind}:"
        self._lease_ms = int(lease_seconds * 1000)
        self._fail_open = fail_open
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._held: defaultdict[str, set[str]] = defaultdict(set)  # what this process holds
        self._renewer: asyncio.Task[None] | None = None
        self._breaker = CircuitBreaker(failure_threshold=3, reset_timeout=2.0)

    def _key(self, owner: str) -> str:
        return self._prefix + owner

    async def acquire(self, owner: str, slot: str, *, limit: int) -> bool:
        self._ensure_renewer()
        if not self._breaker.allow():
            return self._degraded(owner, slot)
        try:
            held = await self._acquire(keys=[self._key(owner)], args=[slot, limit, self._lease_ms])
        except Exception as exc:  # timeouts, refused, pool exhausted: all "Redis is away"
            raise_if_cancelling()
            if self._breaker.record_failure():
                log.warning(
                    "concurrency_backend_down",
                    error=type(exc).__name__,
                    policy="fail_open" if self._fail_open else "fail_closed",
                )
            return self._degraded(owner, slot)
        self._breaker.record_success()
        if held:
            self._held[owner].add(slot)
        return bool(held)

    def _degraded(self, owner: str, slot: str) -> bool:
        metrics.CONCURRENCY_BACKEND_ERRORS.labels(
            outcome="allowed" if self._fail_open else "rejected"
        ).inc()
        if not self._fail_open:
            raise ConcurrencyUnavailable
        self._held[owner].add(slot)  # counted once Redis is back (the renewal adds it)
        return True

    def release_commands(self, owner: str, slot: str) -> list[tuple[str, ...]]:
        return [("ZREM", self._key(owner), slot)]

    def released(self, owner: str, slot: str) -> None:
        held = self._held.get(owner)
        if held is not None:
            held.discard(slot)
            if not held:
                del self._held[owner]

    async def release(self, owner: str, slot: str) -> None:
        self.released(owner, slot)
        try:
            await self._redis.zrem(self._key(owner), slot)
        except Exception as exc:  # the lease frees it anyway
            raise_if_cancelling()
            log.warning("concurrency_release_failed", error=type(exc).__name__)

    # -- leases ------------------------------------------------------------------------------
    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever(), name="concurrency-leases")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self.renew()
            except Exception as exc:  # the next beat retries; the lease covers a short outage
                raise_if_cancelling()
                log.warning("concurrency_renew_failed", error=type(exc).__name__)

    async def renew(self) -> None:
        """Extend the lease of every slot this process holds (one script per principal)."""
        held = [(owner, sorted(slots)) for owner, slots in self._held.items() if slots]
        for owner, slots in held:
            await self._renew(keys=[self._key(owner)], args=[self._lease_ms, *slots])

    async def aclose(self) -> None:
        await stop_task(self._renewer)
        self._renewer = None


def build_run_slots(settings: Settings, redis: Redis | None) -> SlotLimiter:
    """The limiter of foreground runs: Redis-shared with REDIS_URL, else this process's."""
    if redis is None:
        return MemorySlots()
    return RedisSlots(
        redis,
        prefix=settings.REDIS_KEY_PREFIX,
        kind="runs",
        lease_seconds=settings.CONCURRENCY_LEASE_SECONDS,
        fail_open=settings.RATE_LIMIT_FAIL_OPEN,
    )

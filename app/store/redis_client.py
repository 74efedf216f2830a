"""The one Redis client per process, with the timeouts redis-py does not set by default.

docs/decisions.md: a GET against a hung Redis took 59.6 s with defaults, and the default pool fails
past 100 commands in flight. So: short socket and connect timeouts, one quick retry, health
checks on idle connections, and a blocking pool that waits briefly for a free connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from app.core.config import Settings
from app.core.lifecycle import raise_if_cancelling

log = structlog.get_logger(__name__)

BLOCKING_SOCKET_TIMEOUT = 5.0


def build_redis(settings: Settings, *, blocking: bool = False) -> Redis:
    """The shared client; ``blocking=True`` gives a second pool for XREAD/XREADGROUP BLOCK
    calls, whose socket timeout must outlast the block (1 s) while the hot path keeps its
    short one."""
    if not settings.REDIS_URL:
        raise ValueError("REDIS_URL is not set")
    pool = BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=settings.REDIS_POOL_TIMEOUT,
        socket_timeout=BLOCKING_SOCKET_TIMEOUT if blocking else settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        health_check_interval=settings.REDIS_HEALTH_CHECK_INTERVAL,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        decode_responses=True,
    )
    return Redis(connection_pool=pool)


async def listen_forever(
    listen: Callable[[], Awaitable[None]], *, on_disconnect: Callable[[], None], event: str
) -> None:
    """Run a pub/sub ``listen`` coroutine for the life of the process: when Redis drops it,
    log ``event`` once per drop, call ``on_disconnect`` and subscribe again with backoff
    (0.1 s doubling to 5 s, reset once a subscription holds)."""
    backoff = 0.1
    while True:
        try:
            await listen()
        except (RedisError, OSError) as exc:
            raise_if_cancelling()
            on_disconnect()
            log.warning(event, error=type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        else:
            backoff = 0.1

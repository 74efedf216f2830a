"""The one Redis client per process, with the timeouts redis-py does not set by default.

docs/decisions.md: a GET against a hung Redis took 59.6 s with defaults, and the default pool fails
past 100 commands in flight. So: short socket and connect timeouts, one quick retry, health
checks on idle connections, and a blocking pool that waits briefly for a free connection.

``REDIS_URL`` may name one Redis, a cluster or a Sentinel-watched primary
(``app/core/redis_url.py``); every form gets the same timeouts and retry. A cluster client is
handed out typed as ``Redis``: ``RedisCluster`` answers the same command methods (it is not a
subclass), every key layout we use is single-slot per operation (docs/architecture.md
"Storage"), and the suite runs against a real cluster to prove the calls we make.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import structlog
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.maint_notifications import MaintNotificationsConfig

from app.core.config import Settings
from app.core.lifecycle import raise_if_cancelling
from app.core.redis_url import RedisTarget, parse_redis_url
from app.store.redis_multiplexed import MultiplexedRedis

log = structlog.get_logger(__name__)

BLOCKING_SOCKET_TIMEOUT = 5.0
# Pauses between tries of a start-up step that needs Redis (retry_at_start_up).
START_UP_RETRY_PAUSES = (0.1, 0.3, 0.9)
T = TypeVar("T")
# Redis Enterprise's handshake, off for every client we build (build_redis says why).
MAINT_NOTIFICATIONS_OFF = MaintNotificationsConfig(enabled=False)


def build_redis(settings: Settings, *, blocking: bool = False) -> Redis:
    """The shared client; ``blocking=True`` gives a second pool for XREAD/XREADGROUP BLOCK
    calls, whose socket timeout must outlast the block (1 s) while the hot path keeps its
    short one."""
    if not settings.REDIS_URL:
        raise ValueError("REDIS_URL is not set")
    target = parse_redis_url(settings.REDIS_URL)
    options: dict[str, Any] = {
        "socket_timeout": BLOCKING_SOCKET_TIMEOUT if blocking else settings.REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
        "health_check_interval": settings.REDIS_HEALTH_CHECK_INTERVAL,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        "decode_responses": True,
        # Maintenance notifications are a Redis Enterprise/Cloud handshake (CLIENT
        # MAINT_NOTIFICATIONS): one more round trip per connection, refused by open-source
        # Redis, and on a cluster it raced fresh connections ("Connection closed by server").
        "maint_notifications_config": MAINT_NOTIFICATIONS_OFF,
    }
    if target.mode == "cluster":
        return _cluster(target, settings, options)
    if target.mode == "sentinel":
        return _sentinel_primary(target, settings, options)
    pool = BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=settings.REDIS_POOL_TIMEOUT,
        **options,
    )
    if blocking or not settings.REDIS_MULTIPLEX:
        return Redis(connection_pool=pool)
    # Commands share one connection; the pool serves what must hold one (redis_multiplexed).
    return MultiplexedRedis(connection_pool=pool)


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except (AttributeError, RuntimeError) as exc:
            if not _closed_in_use(exc):
                raise
            raise _lost(exc) from exc


class _Cluster(RedisCluster):
    """redis-py's cluster client, with one of its known defects made a Redis error: when a
    connection to a node fails (a timeout, a node going down), the client closes that node's
    other connections while concurrent commands are using them, and those fail with
    AttributeError ('NoneType' object has no attribute 'writelines'; redis-py #3546, #3835)
    or, under uvloop, RuntimeError ('unable to perform operation on <TCPTransport
    closed=True ...>; the handler is closed': the writer is still set, its transport is
    closed). Left alone that is a 500; as a ConnectionError it is what it is, that node
    being unreachable for a moment (503 or fail-open by policy, as for any Redis outage)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except (AttributeError, RuntimeError) as exc:
            if not _closed_in_use(exc):
                raise
            raise _lost(exc) from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py does


def _closed_in_use(exc: Exception) -> bool:
    """A symptom of the defect above; any other RuntimeError is a bug to see, not an outage."""
    return isinstance(exc, AttributeError) or "the handler is closed" in str(exc)


def _lost(exc: Exception) -> RedisConnectionError:
    return RedisConnectionError(f"a cluster connection was closed while in use ({exc})")


def _cluster(target: RedisTarget, settings: Settings, options: dict[str, Any]) -> Redis:
    client = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        max_connections=settings.REDIS_MAX_CONNECTIONS,  # per node
        **options,
    )
    return cast(Redis, client)


def _sentinel_primary(target: RedisTarget, settings: Settings, options: dict[str, Any]) -> Redis:
    if target.primary_name is None:  # parse_redis_url never leaves it out
        raise ValueError("a Sentinel target needs the primary's name")
    credentials: dict[str, Any] = {"username": target.username, "password": target.password}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes),
        sentinel_kwargs={
            "socket_timeout": settings.REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
            **credentials,
        },
        **options,
    )
    # The pool asks the sentinels for the primary on every new connection and drops its
    # connections when a failover moves it, so the client follows the new primary.
    client: Redis = sentinel.master_for(
        target.primary_name,
        db=target.db,
        ssl=target.tls,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        **credentials,
    )
    return client


async def subscribable(redis: Redis) -> None:
    """Make sure a cluster client knows its slot map before a SUBSCRIBE: its pub/sub picks the
    channel's node from that map without fetching it (a fresh client fails with KeyError).
    A no-op once known, and on one Redis. An unreachable cluster raises a RedisError here,
    which the listener's retry loop expects."""
    if not isinstance(redis, RedisCluster):
        return
    try:
        await redis.initialize()
    except RedisClusterException as exc:
        raise RedisConnectionError(str(exc)) from exc


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
        except (RedisError, RedisClusterException, OSError) as exc:
            raise_if_cancelling()
            on_disconnect()
            log.warning(event, error=type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        else:
            backoff = 0.1


async def retry_at_start_up(step: Callable[[], Awaitable[T]]) -> T:
    """``step()``, tried again after each of START_UP_RETRY_PAUSES on a Redis error; the last
    try's error is raised. For what a process settles once as it starts (the generated JWT
    key, the admin account): its first commands, a cluster client's slot map with them, can
    miss the short socket timeout while several processes boot on a busy machine, and a step
    that gives up leaves the process degraded for its whole life (a key of its own: every
    other replica's token refused), where a second or two of start-up would have done."""
    for pause in START_UP_RETRY_PAUSES:
        try:
            return await step()
        except (RedisError, OSError):
            await asyncio.sleep(pause)
    return await step()

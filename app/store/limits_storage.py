"""The ``limits`` storage (rate limits, failed authentications) for the configured Redis.

One Redis: the storage sends through our client (its commands on the shared connection,
app/store/redis_multiplexed.py). A cluster or a Sentinel-watched primary gets the storage
class ``limits`` has for it, built from the same target with the same timeouts; rate-limit
reads go to the primary (a replica's count lags, which would let a burst through). Those
classes open clients of their own: ``close_limits_storage`` closes them at shutdown.

Cluster-safe as ``limits`` writes them: a fixed or moving window is one key per limit and
caller, and the sliding window's two keys carry one hash tag (``<prefix>:{<key>}`` and
``<prefix>:{<key>}/-1``), so every script of theirs touches one slot.
"""

from __future__ import annotations

from typing import Any, cast

from limits.aio.storage import (
    MemoryStorage,
    RedisClusterStorage,
    RedisSentinelStorage,
    RedisStorage,
    Storage,
)
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app.core.config import Settings
from app.core.redis_url import RedisTarget, parse_redis_url
from app.store.redis_client import MAINT_NOTIFICATIONS_OFF


def build_limits_storage(settings: Settings, redis: Redis | None, *, key_prefix: str) -> Storage:
    if redis is None or not settings.REDIS_URL:
        return MemoryStorage()
    target = parse_redis_url(settings.REDIS_URL)
    if target.mode == "single":
        storage = RedisStorage(
            target.limits_uri,
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            key_prefix=key_prefix,
        )
        # Its commands and scripts go through our client (the shared connection,
        # app/store/redis_multiplexed.py) rather than a client of its own on the same pool.
        storage.bridge.storage = redis  # type: ignore[attr-defined]
        storage.bridge.register_scripts()
        return storage
    options: dict[str, Any] = {
        "socket_timeout": settings.REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
        # our client's policy, not redis-py's three retries: during a failover the limiter
        # must fail open (or closed) in a tenth of a second, not in two
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        "maint_notifications_config": MAINT_NOTIFICATIONS_OFF,  # as build_redis
    }
    if target.tls:
        options["ssl"] = True
    if target.mode == "cluster":
        return RedisClusterStorage(
            _plain_uri(target, "redis+cluster"),
            implementation="redispy",
            key_prefix=key_prefix,
            **options,
        )
    return RedisSentinelStorage(
        _plain_uri(target, "redis+sentinel"),
        implementation="redispy",
        key_prefix=key_prefix,
        service_name=target.primary_name,
        use_replicas=False,
        db=target.db,
        **options,
    )


def _plain_uri(target: RedisTarget, scheme: str) -> str:
    """``limits`` reads nodes and credentials from its URI but neither TLS schemes nor a
    database path (TLS and the database travel as options)."""
    auth = ""
    if target.username or target.password:
        auth = f"{target.username or ''}:{target.password or ''}@"
    hosts = ",".join(f"{host}:{port}" for host, port in target.nodes)
    return f"async+{scheme}://{auth}{hosts}"


async def close_limits_storage(storage: Storage) -> None:
    """Close the clients a cluster or Sentinel storage opened for itself (one Redis's storage
    borrows our pool, which the app closes with its own client)."""
    if not isinstance(storage, RedisClusterStorage | RedisSentinelStorage):
        return
    bridge = cast(Any, storage.bridge)  # the redis-py bridge; its clients are untyped here
    for name in ("storage", "storage_replica"):
        client = getattr(bridge, name, None)
        if client is not None:
            await client.aclose()
    sentinel = getattr(bridge, "sentinel", None)
    for client in getattr(sentinel, "sentinels", []):
        await client.aclose()

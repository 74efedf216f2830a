"""The rate limits and the failed-authentication limit on each Redis topology: every
``limits`` strategy counts in Redis and refuses past its limit (on a cluster too: each of its
scripts touches one slot), and ``aclose`` closes the clients a cluster storage opened."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio import Redis

from app.store.auth_failures import AuthFailureLimiter
from app.store.limits_storage import build_limits_storage, close_limits_storage
from app.store.rate_limits import RequestRateLimiter
from app.store.redis_client import build_redis
from tests.conftest import SettingsFactory


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
async def test_each_strategy_refuses_past_its_limit(
    make_settings: SettingsFactory, redis_url: str, strategy: str
) -> None:
    settings = make_settings(
        REDIS_URL=redis_url, RATE_LIMIT_REQUESTS=3, RATE_LIMIT_STRATEGY=strategy
    )
    redis = build_redis(settings)
    # Two processes share the window: what one spends, the other cannot.
    first = RequestRateLimiter(settings=settings, redis=redis)
    second = RequestRateLimiter(settings=settings, redis=redis)
    try:
        decisions = [
            await limiter.check(identity="user:alice", method="GET", route="/v1/agents")
            for limiter in (first, second, first, second)
        ]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert not any(d.degraded for d in decisions)  # counted in Redis, not by the policy
        assert decisions[-1].remaining == 0
        assert decisions[-1].reset_after >= 1
        other = await second.check(identity="user:bob", method="GET", route="/v1/agents")
        assert other.allowed
    finally:
        await first.aclose()
        await second.aclose()
        await redis.aclose()


async def test_failed_authentications_block_an_ip_across_processes(
    make_settings: SettingsFactory, redis_url: str
) -> None:
    settings = make_settings(REDIS_URL=redis_url, AUTH_FAILURE_LIMIT="3/minute")
    redis = build_redis(settings)
    item = settings.auth_failure_limit
    assert item is not None
    first = AuthFailureLimiter(settings=settings, item=item, redis=redis)
    second = AuthFailureLimiter(settings=settings, item=item, redis=redis)
    try:
        for limiter in (first, second, first):
            assert await limiter.retry_after("10.0.0.1") is None
            await limiter.record_failure("10.0.0.1")
        retry = await second.retry_after("10.0.0.1")  # never saw a failure from it itself
        assert retry is not None and retry >= 1
        assert await second.retry_after("10.0.0.2") is None
    finally:
        await first.aclose()
        await second.aclose()
        await redis.aclose()


async def test_aclose_closes_the_storages_own_cluster_client(
    make_settings: SettingsFactory, redis_cluster: Any
) -> None:
    settings = make_settings(REDIS_URL=redis_cluster.url)
    redis = build_redis(settings)
    limiter = RequestRateLimiter(settings=settings, redis=redis)
    try:
        assert (await limiter.check(identity="ip:10.0.0.1", method="GET", route="/")).allowed
        storage_client = cast(Any, limiter)._storage.bridge.storage
        assert storage_client is not redis  # a cluster storage has a client of its own
        connections = [c for node in storage_client.get_nodes() for c in node._connections]
        assert any(c.is_connected for c in connections)
        await limiter.aclose()
        assert not any(c.is_connected for c in connections)
    finally:
        await redis.aclose()


async def test_closing_a_sentinel_or_single_redis_storage(make_settings: SettingsFactory) -> None:
    # Sentinel: its primary and replica clients (never connected here) close without error.
    sentinel = make_settings(REDIS_URL="redis+sentinel://127.0.0.1:1/mymaster")
    storage = build_limits_storage(sentinel, Redis(), key_prefix="p:")
    await close_limits_storage(storage)
    # One Redis: the storage borrows our pool, which stays usable for its owner.
    shared = Redis()
    single = build_limits_storage(
        make_settings(REDIS_URL="redis://127.0.0.1:1/0"), shared, key_prefix="p:"
    )
    await close_limits_storage(single)
    assert cast(Any, single).bridge.storage.connection_pool is shared.connection_pool
    await shared.aclose()

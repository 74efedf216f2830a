"""Readiness through a failover, in-process (the full app, its real Redis client): GET
/health/ready says Redis is down as soon as a primary dies, names what failed, and says ok by
itself once a replica serves again; never ok while part of the data has no primary.

A cluster client's PING goes to one node (redis-py's default node) and stays green while a
third of the slots have no primary: the check under test asks every primary instead."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis import Redis as SyncRedis

from tests.conftest import AppClient, SettingsFactory, app_client
from tests.support.redis_topologies import RedisClusterTopology, RedisSentinelTopology

pytestmark = pytest.mark.e2e


async def _ready(client: AppClient) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    response = await client.get("/health/ready")
    assert time.monotonic() - started < 2, "readiness must answer within its timeout"
    check: dict[str, Any] = response.json()["checks"]["redis"]
    return response.status_code, check


async def _until_ready(client: AppClient, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (await _ready(client))[0] != 200:
        assert time.monotonic() < deadline, await _ready(client)
        await asyncio.sleep(0.1)


async def test_cluster_readiness_is_down_while_a_primary_is_dead(
    fresh_cluster: RedisClusterTopology, make_settings: SettingsFactory
) -> None:
    cluster = fresh_cluster
    async with app_client(make_settings(REDIS_URL=cluster.url)) as client:
        assert await _ready(client) == (200, {"status": "ok"})
        killed = cluster.primaries()[0]
        cluster.node(killed).kill()

        status, check = await _ready(client)
        assert status == 503 and check["status"] == "down"
        # What failed is named: the dead node itself, or a live primary that sees slots without
        # a primary (unless the probe ran out of its 0.5 s first, on a busy machine).
        if check["error"] != "TimeoutError":
            detail = check.get("detail", "")
            assert f":{killed} did not answer" in detail or "cluster_state:" in detail, check
        # Down for as long as its slots have no primary: every probe, not only the first.
        for _ in range(3):
            assert (await _ready(client))[0] == 503
            await asyncio.sleep(0.2)

        await asyncio.to_thread(cluster.wait_promoted, killed)
        await _until_ready(client)
        assert await _ready(client) == (200, {"status": "ok"})

        # The old primary rejoins as a replica: still ready, and it is not asked as a primary.
        await asyncio.to_thread(cluster.restart_as_replica, killed)
        assert killed not in cluster.primaries()
        await _until_ready(client)


async def test_sentinel_readiness_follows_the_primary_the_sentinels_name(
    fresh_sentinel: RedisSentinelTopology, make_settings: SettingsFactory
) -> None:
    sentinel = fresh_sentinel
    async with app_client(make_settings(REDIS_URL=sentinel.url)) as client:
        assert await _ready(client) == (200, {"status": "ok"})
        killed = sentinel.primary_port()
        assert killed is not None
        sentinel.node(killed).kill()

        status, check = await _ready(client)
        assert status == 503 and check["status"] == "down" and check["error"], check

        promoted = await asyncio.to_thread(sentinel.wait_promoted, killed)
        assert promoted != killed
        await _until_ready(client)
        assert await _ready(client) == (200, {"status": "ok"})

        # The node the sentinels name stops being a primary (demoted by hand, faster than any
        # sentinel notices): it still answers PING, but readiness asks ROLE.
        demoted = SyncRedis(port=promoted, socket_timeout=2)
        try:
            demoted.replicaof("127.0.0.1", killed)
        finally:
            demoted.close()
        status, check = await _ready(client)
        assert status == 503, check
        assert check["detail"] == "the node the sentinels name answers as slave", check

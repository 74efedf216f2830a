from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.redis_topologies import RedisClusterTopology, RedisSentinelTopology

ADMIN_PASSWORD = "admin-test-password"


def login(base_url: str, password: str = ADMIN_PASSWORD) -> str:
    response = httpx.post(
        f"{base_url}/v1/auth/token", data={"username": "admin", "password": password}, timeout=10
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def fresh_cluster() -> Iterator[RedisClusterTopology]:
    """A Redis Cluster of the test's own (not the session's `redis_cluster`): for a test that
    kills its nodes."""
    topology = RedisClusterTopology()
    try:
        topology.start()
        yield topology
    finally:
        topology.close()


@pytest.fixture
def fresh_sentinel() -> Iterator[RedisSentinelTopology]:
    """A Sentinel set (a primary, a replica, three sentinels) of the test's own."""
    topology = RedisSentinelTopology()
    try:
        topology.start()
        yield topology
    finally:
        topology.close()

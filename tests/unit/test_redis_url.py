"""REDIS_URL's forms: one Redis, a cluster, a Sentinel-watched primary; a bad one is one
clear line at start-up, and the client built for each form is the right kind."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from app.core.config import Settings
from app.core.redis_url import parse_redis_url
from app.core.urls import without_credentials
from app.store.limits_storage import build_limits_storage
from app.store.redis_client import build_redis
from app.store.redis_multiplexed import MultiplexedRedis


def test_single_redis_urls_pass_through() -> None:
    for url in ("redis://h:6380/2", "rediss://:pw@h:6380/0", "unix:///run/redis.sock"):
        target = parse_redis_url(url)
        assert (target.mode, target.url) == ("single", url)
    assert parse_redis_url("rediss://h/0").tls


def test_a_cluster_url_lists_its_seed_nodes() -> None:
    target = parse_redis_url("rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert target.mode == "cluster" and target.tls
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert (target.username, target.password) == ("app", "s@cret")


def test_a_sentinel_url_names_the_primary_and_database() -> None:
    target = parse_redis_url("redis+sentinel://:pw@s1:26379,s2/agents/3")
    assert target.mode == "sentinel"
    assert target.nodes == (("s1", 26379), ("s2", 26379))
    assert (target.primary_name, target.db, target.password) == ("agents", 3, "pw")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://h:6379", "must start with one of"),
        ("redis+cluster://h:7000/0", "takes no path"),
        ("redis+sentinel://s1:26379", "names the primary"),
        ("redis+sentinel://s1:26379/agents/x", "must be a number"),
        ("redis+cluster://h:notaport", "bad port"),
        ("redis+cluster://h:70000", "bad port"),
        ("redis+cluster://:7000", "without a host"),
    ],
)
def test_a_bad_url_is_refused_at_start_up_saying_why(url: str, complaint: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, REDIS_URL=url)
    assert complaint in str(refused.value)


def test_a_key_prefix_with_braces_is_refused() -> None:
    # a brace in the prefix would become every key's hash tag: one slot for everything
    with pytest.raises(ValidationError, match="REDIS_KEY_PREFIX"):
        Settings(_env_file=None, REDIS_KEY_PREFIX="svc{1}:")


async def test_each_form_builds_its_own_kind_of_client() -> None:
    # Constructing clients opens no connection; nothing here needs a server.
    single = build_redis(Settings(_env_file=None, REDIS_URL="redis://127.0.0.1:1/0"))
    cluster = build_redis(Settings(_env_file=None, REDIS_URL="redis+cluster://127.0.0.1:1"))
    sentinel_settings = Settings(_env_file=None, REDIS_URL="redis+sentinel://127.0.0.1:1/agents/2")
    primary = build_redis(sentinel_settings)
    try:
        assert type(single) is MultiplexedRedis  # one Redis: commands share a connection
        assert (
            type(
                build_redis(
                    Settings(_env_file=None, REDIS_URL="redis://127.0.0.1:1/0"), blocking=True
                )
            )
            is Redis
        )
        assert isinstance(cluster, RedisCluster)
        assert not isinstance(primary, MultiplexedRedis)  # a Sentinel's primary: redis-py's
        assert isinstance(primary.connection_pool, SentinelConnectionPool)
        assert primary.connection_pool.service_name == "agents"
        assert primary.connection_pool.connection_kwargs["db"] == 2
        # the hot path's short timeout reaches every form
        assert primary.connection_pool.connection_kwargs["socket_timeout"] == 0.25
        storage = build_limits_storage(sentinel_settings, primary, key_prefix="p:")
        assert type(storage).__name__ == "RedisSentinelStorage"
    finally:
        for client in (single, cluster, primary):
            await client.aclose()


def test_log_lines_name_every_node_but_no_credentials() -> None:
    assert (
        without_credentials("redis+cluster://u:pw@a:7000,b:7001") == "redis+cluster://a:7000,b:7001"
    )
    assert without_credentials("redis+sentinel://:pw@s1:26379/agents") == (
        "redis+sentinel://s1:26379/agents"
    )

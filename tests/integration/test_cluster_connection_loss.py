"""A cluster connection closed under a command is a Redis outage, never a 500.

redis-py's cluster client closes a node's connections when one of them fails (a node going
down, a timeout) while other commands are still using them. Under uvloop, which the server
runs on, the next write on such a connection raises RuntimeError ('... the handler is
closed'), which nothing maps to 503: the failover test caught an invoke answered 500 that
way. The service's client (app/store/redis_client.py) reports it as a ConnectionError, the
error every Redis outage is. Here the transport is closed for real, on a real cluster, in a
uvloop loop, as the race leaves it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError

from app.store.redis_client import build_redis
from tests.conftest import SettingsFactory
from tests.support.redis_topologies import RedisClusterTopology


def _close_transports_under(client: Any, key: str) -> int:
    """Close the transport of every open connection to ``key``'s node, leaving redis-py's
    connection objects as they were (what the client's own cleanup does to the others)."""
    closed = 0
    for connection in client.get_node_from_key(key)._connections:  # noqa: SLF001
        if connection._writer is not None:  # noqa: SLF001
            connection._writer.transport.abort()  # noqa: SLF001
            closed += 1
    return closed


@pytest.mark.parametrize("via", ["command", "pipeline"])
def test_a_connection_closed_under_a_command_is_a_connection_error(
    redis_cluster: RedisClusterTopology, make_settings: SettingsFactory, key_prefix: str, via: str
) -> None:
    key = f"{key_prefix}closed-under"

    async def scenario() -> None:
        client: Any = build_redis(make_settings(REDIS_URL=redis_cluster.url))
        try:
            await client.set(key, "kept")
            assert _close_transports_under(client, key) >= 1
            with pytest.raises(RedisConnectionError, match="closed while in use"):
                if via == "command":
                    await client.get(key)
                else:
                    async with client.pipeline() as pipe:
                        pipe.get(key)
                        await pipe.execute()
            # The client recovers by itself: the next command opens a new connection.
            assert await client.get(key) == "kept"
            await client.delete(key)
        finally:
            await client.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the server runs
        runner.run(scenario())

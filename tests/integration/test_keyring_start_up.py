"""The generated JWT key survives a Redis that is slow to answer at start-up.

In CI a replica booting beside two other processes timed out on its first Redis command and
fell back to a key of its own: every token the other replica issued was 401 there. A Redis
paused for a second (CLIENT PAUSE: connections accepted, commands held, as on a busy
machine) is now waited for, and the process joins the deployment's key."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.security.keyring import Keyring
from app.store.redis_client import build_redis
from tests.conftest import SettingsFactory
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.xdist_group("keyring_start_up")


async def test_a_redis_slow_at_start_up_is_waited_for_and_the_key_is_shared(
    module_redis: RedisServer, make_settings: SettingsFactory
) -> None:
    settings = make_settings(REDIS_URL=module_redis.url, SECRET_KEY=None)
    redis: Redis = build_redis(settings)
    booting: Redis = build_redis(settings)  # another process's client, connecting afresh
    admin = Redis.from_url(module_redis.url, decode_responses=True)
    try:
        first = Keyring(settings)
        await first.load(redis)
        assert first.source == "generated-shared"

        # Longer than a command's timeout and its one retry in the client (2 x 0.25 s).
        await admin.client_pause(1000, all=True)
        second = Keyring(settings)
        await second.load(booting)
        assert second.source == "generated-shared"
        assert second.signing_key == first.signing_key
    finally:
        await admin.client_unpause()
        await admin.aclose()
        await redis.aclose()
        await booting.aclose()

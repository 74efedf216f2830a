"""What a process settles in Redis as it starts survives a Redis slow to answer then.

In CI a replica booting beside two other processes timed out on its first Redis command and
fell back to a JWT key of its own: every token the other replica issued was 401 there. The
admin account is settled the same way (a first deployment without it cannot sign in). A
Redis paused by CLIENT PAUSE (connections accepted, commands held, as on a busy machine) is
now waited for (app/store/redis_client.py, retry_at_start_up)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.security.keyring import Keyring
from app.services import build_services
from app.store.redis_client import build_redis
from tests.conftest import SettingsFactory
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.xdist_group("start_up_with_slow_redis")


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


async def test_the_admin_is_made_though_redis_is_slow_at_start_up(
    module_redis: RedisServer, make_settings: SettingsFactory
) -> None:
    settings = make_settings(REDIS_URL=module_redis.url, SECRET_KEY="k" * 40)
    services = build_services(settings)
    admin = Redis.from_url(module_redis.url, decode_responses=True)
    try:
        await admin.client_pause(1000, all=True)
        # The lifespan's step, on its own: the steps before it wait for Redis in their own
        # ways, so only here is the pause sure to meet the admin's first try.
        await services._bootstrap_admin()  # noqa: SLF001
        user = await services.users.get(settings.ADMIN_USERNAME)
        assert user is not None and "agents:run" in user.scopes
    finally:
        await admin.client_unpause()
        await admin.aclose()
        await services.aclose()

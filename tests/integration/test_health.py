"""Health probes: live does no I/O, ready reports each dependency."""

from __future__ import annotations

import httpx

from tests.conftest import SettingsFactory, app_client
from tests.support.redis_server import RedisServer


async def test_live_and_ready_without_redis(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == {"status": "disabled"}
    assert (await client.get("/health")).json() == ready.json()


async def test_ready_reports_redis_down_then_recovers_by_itself(
    make_settings: SettingsFactory,
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        async with app_client(make_settings(REDIS_URL=redis.url)) as client:
            assert (await client.get("/health/ready")).status_code == 200
            redis.stop()
            down = await client.get("/health/ready")
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert down.json()["checks"]["redis"]["status"] == "down"
            assert down.json()["checks"]["redis"]["error"]
            live = await client.get("/health/live")
            assert live.status_code == 200  # liveness never depends on Redis
            redis.start()
            up = await client.get("/health/ready")
            assert up.status_code == 200, up.text
            assert up.json()["checks"]["redis"] == {"status": "ok"}
    finally:
        redis.close()


async def test_health_and_metrics_need_no_credentials_even_with_bad_ones(
    client: httpx.AsyncClient,
) -> None:
    bad = {"Authorization": "Bearer garbage"}
    assert (await client.get("/health/live", headers=bad)).status_code == 200
    assert (await client.get("/metrics", headers=bad)).status_code == 200

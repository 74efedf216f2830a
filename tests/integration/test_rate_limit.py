"""Rate limiting through the full chain, on limits.aio, in memory and in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.responses import StreamingResponse

from tests.conftest import SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem
from tests.support.redis_server import RedisServer


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_limit_is_enforced_with_headers_and_retry_after(
    make_settings: SettingsFactory, redis_server: RedisServer, backend: str
) -> None:
    overrides: dict[str, Any] = {"RATE_LIMIT_REQUESTS": 3, "RATE_LIMIT_WINDOW": 60}
    if backend == "redis":
        redis_server.start()
        overrides["REDIS_URL"] = redis_server.url
    async with app_client(make_settings(**overrides)) as client:
        remaining = []
        for _ in range(3):
            response = await client.get("/v1/auth/me")
            assert response.status_code == 401  # counted, though unauthenticated
            assert response.headers["x-ratelimit-limit"] == "3"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        limited = await client.get("/v1/auth/me")
        body = assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert "3 requests" in body["detail"]


async def test_path_parameters_share_one_bucket(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(RATE_LIMIT_REQUESTS=2)) as client:
        token = await login(client)  # POST /v1/auth/token has its own route limit
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            (await client.delete(f"/v1/auth/api-keys/id{i}", headers=headers)).status_code
            for i in range(3)
        ]
        assert statuses == [404, 404, 429]
        # Another route template is another bucket.
        assert (await client.get("/v1/auth/me", headers=headers)).status_code == 200


async def test_buckets_are_per_principal_then_per_ip(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(RATE_LIMIT_REQUESTS=2)) as client:
        token = await login(client)
        created = []
        for name in ("a", "b"):
            response = await client.post(
                "/v1/auth/api-keys",
                json={"name": name, "scopes": ["agents:run"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            created.append(response.json()["key"])
        for key in created:
            codes = [
                (await client.get("/v1/auth/me", headers={"X-API-Key": key})).status_code
                for _ in range(3)
            ]
            assert codes == [200, 200, 429], key
        # Anonymous requests are keyed by client IP: a bucket of their own.
        assert (await client.get("/v1/auth/me")).status_code == 401


async def test_per_route_override_for_login(make_settings: SettingsFactory) -> None:
    settings = make_settings(RATE_LIMIT_ROUTES={"POST /v1/auth/token": "2/minute"})
    async with app_client(settings) as client:
        codes = [
            (
                await client.post("/v1/auth/token", data={"username": "a", "password": "b"})
            ).status_code
            for _ in range(3)
        ]
        assert codes == [401, 401, 429]


async def test_health_and_metrics_are_exempt(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(RATE_LIMIT_REQUESTS=1)) as client:
        for _ in range(5):
            assert (await client.get("/health/live")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200


async def test_streaming_response_passes_through_whole(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(RATE_LIMIT_REQUESTS=5)) as client:

        async def stream() -> StreamingResponse:
            async def events() -> AsyncIterator[bytes]:
                for i in range(50):
                    yield f"data: {i}\n\n".encode()
                    await asyncio.sleep(0)

            return StreamingResponse(events(), media_type="text/event-stream")

        client.app.add_api_route("/v1/test-stream", stream)
        response = await client.get("/v1/test-stream")
        assert response.status_code == 200
        assert response.text.count("data: ") == 50
        assert response.headers["x-ratelimit-limit"] == "5"


async def test_redis_down_fail_open_keeps_serving_without_waiting(
    make_settings: SettingsFactory,
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        settings = make_settings(REDIS_URL=redis.url, RATE_LIMIT_REQUESTS=1000)
        async with app_client(settings) as client:
            token = await login(client)
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/v1/auth/me", headers=headers)).status_code == 200
            redis.stop()
            started = time.perf_counter()
            for _ in range(20):
                response = await client.get("/v1/auth/me", headers=headers)
                assert response.status_code == 200
            elapsed = time.perf_counter() - started
            # The breaker opens after a few failures: 20 requests must not each pay a timeout.
            assert elapsed < 3, elapsed
            metrics_text = (await client.get("/metrics")).text
            assert 'rate_limit_backend_errors_total{outcome="allowed"}' in metrics_text
            redis.start()
            await asyncio.sleep(2.2)  # breaker reset timeout, then a probe closes it
            # The restarted Redis is empty: its users are gone, so the token is refused,
            # revoked with its user. The limiter is back: an anonymous caller is counted
            # (by address) again and told its limit.
            revoked = await client.get("/v1/auth/me", headers=headers)
            assert revoked.status_code == 401
            assert revoked.json()["code"] == "token_revoked"
            for _ in range(3):
                response = await client.get("/v1/auth/me")
            assert response.status_code == 401
            assert response.headers.get("x-ratelimit-limit") == "1000"
    finally:
        redis.close()


async def test_redis_down_fail_closed_answers_503(make_settings: SettingsFactory) -> None:
    redis = RedisServer()
    redis.start()
    try:
        settings = make_settings(REDIS_URL=redis.url, RATE_LIMIT_FAIL_OPEN=False)
        async with app_client(settings) as client:
            token = await login(client)
            redis.stop()
            response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert_problem(response, 503, "dependency_unavailable")
            assert response.headers["retry-after"] == "1"
    finally:
        redis.close()


async def test_rate_limit_can_be_switched_off(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(RATE_LIMIT_ENABLED=False, RATE_LIMIT_REQUESTS=1)) as c:
        for _ in range(3):
            response = await c.get("/v1/auth/me")
            assert response.status_code == 401
            assert "x-ratelimit-limit" not in response.headers


async def test_api_key_auth_with_redis_down_is_503_not_500(make_settings: SettingsFactory) -> None:
    redis = RedisServer()
    redis.start()
    try:
        async with app_client(make_settings(REDIS_URL=redis.url)) as client:
            redis.stop()
            response = await client.get(
                "/v1/auth/me", headers={"X-API-Key": "ask_abcdefgh_" + "a" * 32}
            )
            assert_problem(response, 503, "dependency_unavailable")
            login_response = await client.post(
                "/v1/auth/token", data={"username": "admin", "password": "whatever"}
            )
            assert_problem(login_response, 503, "dependency_unavailable")
    finally:
        redis.close()


async def test_reserved_batches_never_exceed_the_shared_limit(
    make_settings: SettingsFactory, redis_server: RedisServer
) -> None:
    """Two processes (two limiters) sharing Redis, limit 1000/min -> batches of 10."""
    from redis.asyncio import Redis

    from app.store.rate_limits import RequestRateLimiter
    from app.store.redis_client import build_redis

    redis_server.start()
    settings = make_settings(REDIS_URL=redis_server.url, RATE_LIMIT_REQUESTS=1000)
    clients = [build_redis(settings), build_redis(settings)]
    admin = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await admin.config_resetstat()
        limiters = [RequestRateLimiter(settings=settings, redis=client) for client in clients]
        allowed = 0
        remaining_seen: list[int] = []
        for i in range(1200):
            decision = await limiters[i % 2].check(identity="key:k", method="GET", route="/x")
            allowed += decision.allowed
            if i % 2 == 0:
                remaining_seen.append(decision.remaining)
        assert 1000 - 2 * 9 <= allowed <= 1000
        assert remaining_seen == sorted(remaining_seen, reverse=True)  # never goes up
        stats = await admin.info("commandstats")
        scripts = sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_evalsha"))
        # ~2 script calls per batch of 10, plus single hits near the limit.
        assert scripts < 1200 * 2 / 4, scripts
    finally:
        for client in clients:
            await client.aclose()
        await admin.aclose()


async def test_concurrent_requests_share_one_refill(
    make_settings: SettingsFactory, redis_server: RedisServer
) -> None:
    from redis.asyncio import Redis

    from app.store.rate_limits import RequestRateLimiter
    from app.store.redis_client import build_redis

    redis_server.start()
    settings = make_settings(REDIS_URL=redis_server.url, RATE_LIMIT_REQUESTS=1_000_000)
    client = build_redis(settings)
    admin = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await admin.config_resetstat()
        limiter = RequestRateLimiter(settings=settings, redis=client)
        decisions = await asyncio.gather(
            *(limiter.check(identity="user:u", method="GET", route="/x") for _ in range(50))
        )
        assert all(d.allowed for d in decisions)
        stats = await admin.info("commandstats")
        # Successful script runs (a first EVALSHA of a script fails with NOSCRIPT, then loads).
        scripts = sum(
            v["calls"] - v.get("failed_calls", 0) - v.get("rejected_calls", 0)
            for k, v in stats.items()
            if k.startswith("cmdstat_evalsha")
        )
        assert scripts == 2  # one hit for a batch of 100, one window read
    finally:
        await client.aclose()
        await admin.aclose()


async def test_many_concurrent_refills_of_one_bucket_never_fail(
    make_settings: SettingsFactory, redis_server: RedisServer
) -> None:
    """Waiters woken by one refill must not race each other into a second one."""
    from app.store.rate_limits import RequestRateLimiter
    from app.store.redis_client import build_redis

    redis_server.start()
    settings = make_settings(REDIS_URL=redis_server.url, RATE_LIMIT_REQUESTS=1000)
    client = build_redis(settings)
    try:
        limiter = RequestRateLimiter(settings=settings, redis=client)
        decisions = await asyncio.gather(
            *(limiter.check(identity="ip:1", method="GET", route="/x") for _ in range(400))
        )
        assert all(d.allowed for d in decisions)
    finally:
        await client.aclose()

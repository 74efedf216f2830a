"""Redis stopped under a real server: it keeps answering, says why it is not ready, recovers."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.e2e.conftest import login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_service_survives_redis_outage_and_recovers_by_itself() -> None:
    redis = RedisServer()
    redis.start()
    env = {"REDIS_URL": redis.url, "RATE_LIMIT_REQUESTS": "100000"}
    try:
        with ServerProcess(env=env) as server:
            token = login(server.url)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.url, timeout=5) as client:
                assert client.get("/health/ready").status_code == 200
                redis.stop()
                started = time.perf_counter()
                for _ in range(30):
                    response = client.get("/v1/auth/me", headers=headers)
                    assert response.status_code == 200  # fail-open rate limiting
                # 30 requests with Redis gone: the breaker keeps this far from 30 timeouts.
                assert time.perf_counter() - started < 5
                ready = client.get("/health/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["redis"]["status"] == "down"
                assert client.get("/health/live").status_code == 200
                redis.start()
                assert _wait_for(lambda: client.get("/health/ready").status_code == 200)
                # The restarted Redis is empty (no persistence here), so the admin and its
                # token are gone; the anonymous login route shows the limiter is back.
                wrong = {"username": "admin", "password": "wrong"}
                assert _wait_for(
                    lambda: "x-ratelimit-limit" in client.post("/v1/auth/token", data=wrong).headers
                ), "rate limiting did not resume after Redis came back"
            logs = server.logs()
            assert "rate_limit_backend_down" in logs
    finally:
        redis.close()

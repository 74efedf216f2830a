"""Two server processes sharing one Redis (or one cluster) hold one limit between them."""

from __future__ import annotations

import httpx

from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

LIMIT = 10


def test_limit_holds_in_total_across_two_processes(redis_url: str) -> None:
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": "e2e-shared-limit:",
        "RATE_LIMIT_REQUESTS": str(LIMIT),
        "RATE_LIMIT_WINDOW": "60",
    }
    with ServerProcess(env=env) as first, ServerProcess(env=env) as second:
        statuses = []
        retry_after = []
        for i in range(2 * LIMIT):
            server = first if i % 2 == 0 else second
            response = httpx.get(f"{server.url}/v1/auth/me", timeout=5)
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.append(int(response.headers["retry-after"]))
                assert response.headers["content-type"] == "application/problem+json"
        # Anonymous requests from 127.0.0.1 share one bucket across both processes.
        assert statuses.count(401) == LIMIT, statuses
        assert statuses.count(429) == LIMIT, statuses
        assert statuses[:LIMIT] == [401] * LIMIT
        assert all(1 <= seconds <= 60 for seconds in retry_after)


def test_forwarded_for_is_trusted_only_from_allowed_proxies(redis_server: RedisServer) -> None:
    redis_server.start()
    base = {
        "REDIS_URL": redis_server.url,
        "RATE_LIMIT_REQUESTS": "2",
    }
    # 127.0.0.1 is not a trusted proxy: a spoofed X-Forwarded-For must not buy a new bucket.
    untrusted = {
        **base,
        "REDIS_KEY_PREFIX": "e2e-xff-untrusted:",
        "FORWARDED_ALLOW_IPS": "10.9.9.9",
    }
    with ServerProcess(env=untrusted) as server:
        codes = [
            httpx.get(
                f"{server.url}/v1/auth/me", headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 429, 429]
    # Behind a trusted proxy, each real client gets its own bucket.
    trusted = {**base, "REDIS_KEY_PREFIX": "e2e-xff-trusted:", "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with ServerProcess(env=trusted) as server:
        codes = [
            httpx.get(
                f"{server.url}/v1/auth/me", headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 401, 401]

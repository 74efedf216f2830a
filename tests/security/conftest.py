"""The attack suite: each module reproduces attacks of one theme against real server
processes (tests/support/server_process.py) and a real Redis (tests/support/redis_server.py),
and asserts they are refused. Shared helpers live here."""

from __future__ import annotations

import httpx

ADMIN_PASSWORD = "admin-test-password"  # what ServerProcess's TEST_ENV sets


def login(
    base_url: str, *, username: str = "admin", password: str = ADMIN_PASSWORD, scope: str = ""
) -> str:
    data = {"username": username, "password": password}
    if scope:
        data["scope"] = scope
    response = httpx.post(f"{base_url}/v1/auth/token", data=data, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

from __future__ import annotations

import httpx

ADMIN_PASSWORD = "admin-test-password"


def login(base_url: str, password: str = ADMIN_PASSWORD) -> str:
    response = httpx.post(
        f"{base_url}/v1/auth/token", data={"username": "admin", "password": password}, timeout=10
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])

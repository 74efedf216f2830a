"""A tenant's principal for the in-process microbenchmarks: a tenant whose policy sets day and
month budgets and allowed agents, and a user of it signed in, so an invoke pays the tenant
lookup (authenticator, run service, task and rate-limit paths) and its budget check."""

from __future__ import annotations

import json
import secrets

from starlette.types import ASGIApp

from bench.agent_microbench import call

HUGE = 10**12
JSON = (b"content-type", b"application/json")


async def tenant_token(app: ASGIApp, admin: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    policy = {
        "budget_tokens_per_day": HUGE,
        "budget_tokens_per_month": HUGE,
        "allowed_agents": ["chat"],
    }
    tenant_id = f"bench-{secrets.token_hex(4)}"  # children share one redis-server
    tenant = {"id": tenant_id, "name": "Bench", "policy": policy}
    await _post(app, "/v1/tenants", [*admin, JSON], json.dumps(tenant).encode(), 201)
    password = secrets.token_urlsafe(18)
    user = {
        "username": "runner",
        "password": password,
        "scopes": ["agents:run"],
        "tenant_id": tenant_id,
    }
    await _post(app, "/v1/auth/users", [*admin, JSON], json.dumps(user).encode(), 201)
    form = f"username={tenant_id}/runner&password={password}".encode()
    body = await _post(
        app, "/v1/auth/token", [(b"content-type", b"application/x-www-form-urlencoded")], form, 200
    )
    return [(b"authorization", b"Bearer " + json.loads(body)["access_token"].encode())]


async def _post(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], body: bytes, expected: int
) -> bytes:
    status, _, answer = await call(app, path, headers, body)
    if status != expected:
        raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
    return bytes(answer)

"""Tenants (/v1/tenants), in-process against the memory stores and a real Redis: managing
them (admin only; a tenant:admin reads its own), their users and API keys (made with
`tenant_id`, signing in as `<tenant>/<name>`, never holding `admin`), their policy applied
to each principal (allowed agents, rate limit, task cap, per-run and daily budgets), and a
deleted tenant's credentials refused at once, its id retired for good. Route-by-route
isolation between two tenants is tests/integration/test_tenant_isolation.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import AppClient, SettingsFactory, app_client, login, redis_url_for
from tests.integration.test_auth_api import assert_problem
from tests.integration.test_tasks_api import admin as _admin

Auth = dict[str, str]
PASSWORD = "a-long-enough-password"
QUICK = {
    "OFFLINE_LATENCY_MS": 0,
    "OFFLINE_TOKENS_PER_SECOND": 0,
    "OFFLINE_RESPONSE_TOKENS": 40,
    "RATE_LIMIT_ENABLED": False,
}
RUNNER_SCOPES = ["agents:run", "sessions:read", "sessions:write", "tasks:read", "tasks:write"]


@pytest.fixture(params=["memory", "redis"])
async def client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> AsyncIterator[AppClient]:
    overrides: dict[str, Any] = dict(QUICK)
    if request.param == "redis":
        overrides["REDIS_URL"] = redis_url_for(request, "redis")
    async with app_client(make_settings(**overrides)) as http:
        yield http


async def make_tenant(
    client: httpx.AsyncClient, admin: Auth, tenant_id: str | None = None, **policy: Any
) -> str:
    tenant_id = tenant_id or f"t-{uuid.uuid4().hex[:8]}"
    made = await client.post(
        "/v1/tenants",
        json={"id": tenant_id, "name": tenant_id.upper(), "policy": policy},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    return tenant_id


async def make_user(
    client: httpx.AsyncClient, auth: Auth, name: str, scopes: list[str], tenant: str | None
) -> Auth:
    """A user of ``tenant`` (None: the caller's), signed in as ``<tenant>/<name>``."""
    body: dict[str, Any] = {"username": name, "password": PASSWORD, "scopes": scopes}
    if tenant is not None:
        body["tenant_id"] = tenant
    made = await client.post("/v1/auth/users", json=body, headers=auth)
    assert made.status_code == 201, made.text
    token = await login(client, PASSWORD, username=made.json()["username"])
    return {"Authorization": f"Bearer {token}"}


async def make_key(
    client: httpx.AsyncClient, auth: Auth, scopes: list[str], tenant: str | None = None
) -> Auth:
    body: dict[str, Any] = {"name": f"k-{uuid.uuid4().hex[:6]}", "scopes": scopes}
    if tenant is not None:
        body["tenant_id"] = tenant
    made = await client.post("/v1/auth/api-keys", json=body, headers=auth)
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["key"]}


async def me(client: httpx.AsyncClient, auth: Auth) -> dict[str, Any]:
    response = await client.get("/v1/auth/me", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_admin_manages_tenants_and_bad_input_is_refused_clearly(
    client: AppClient,
) -> None:
    admin = await _admin(client)
    tenant = await make_tenant(client, admin, rate_limit="600/minute", allowed_agents=["chat"])
    got = (await client.get(f"/v1/tenants/{tenant}", headers=admin)).json()
    assert got["id"] == tenant and got["name"] == tenant.upper()
    assert got["policy"]["rate_limit"] == "600/minute"
    assert got["policy"]["allowed_agents"] == ["chat"]
    assert got["policy"]["max_active_tasks"] is None  # the deployment's setting applies
    listed = (await client.get("/v1/tenants", headers=admin)).json()
    assert tenant in [item["id"] for item in listed["items"]]

    duplicate = await client.post(
        "/v1/tenants", json={"id": tenant, "name": "again"}, headers=admin
    )
    assert_problem(duplicate, 409, "tenant_exists")
    default = await client.post("/v1/tenants", json={"id": "default", "name": "d"}, headers=admin)
    assert_problem(default, 422, "invalid_tenant_id")
    for bad in (
        {"id": "Has Caps", "name": "x"},
        {"id": "ok-id", "name": "x", "policy": {"rate_limit": "lots"}},
        {"id": "ok-id", "name": "x", "policy": {"max_active_tasks": -1}},
    ):
        assert_problem(
            await client.post("/v1/tenants", json=bad, headers=admin), 422, "validation_error"
        )
    unknown_agent = await client.post(
        "/v1/tenants",
        json={"id": "ok-id", "name": "x", "policy": {"allowed_agents": ["nope"]}},
        headers=admin,
    )
    assert_problem(unknown_agent, 422, "unknown_agent")
    assert (await client.get("/v1/tenants/ok-id", headers=admin)).status_code == 404  # nothing made

    renamed = await client.patch(
        f"/v1/tenants/{tenant}",
        json={"name": "Renamed", "policy": {"max_active_tasks": 3}},
        headers=admin,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["policy"] == {
        **got["policy"],
        "rate_limit": None,
        "allowed_agents": None,
        "max_active_tasks": 3,
    }
    assert_problem(await client.delete("/v1/tenants/default", headers=admin), 409, "tenant_default")
    assert (await client.delete(f"/v1/tenants/{tenant}", headers=admin)).status_code == 204
    assert_problem(
        await client.get(f"/v1/tenants/{tenant}", headers=admin), 404, "tenant_not_found"
    )
    assert_problem(
        await client.delete(f"/v1/tenants/{tenant}", headers=admin), 404, "tenant_not_found"
    )


async def test_a_tenants_principals_carry_it_and_its_admin_reaches_only_its_own(
    client: AppClient,
) -> None:
    admin = await _admin(client)
    acme, globex = await make_tenant(client, admin), await make_tenant(client, admin)
    boss = await make_user(client, admin, "boss", ["tenant:admin", *RUNNER_SCOPES], acme)
    who = await me(client, boss)
    assert who["id"] == f"user:{acme}/boss" and who["tenant"] == acme
    assert who["name"] == f"{acme}/boss"

    # A tenant's principal never holds admin (it reaches every tenant).
    for path, body in (
        ("/v1/auth/users", {"username": "root", "password": PASSWORD, "scopes": ["admin"]}),
        ("/v1/auth/api-keys", {"name": "root", "scopes": ["admin"]}),
    ):
        refused = await client.post(path, json={**body, "tenant_id": acme}, headers=admin)
        assert_problem(refused, 422, "scope_not_allowed")

    # Its tenant:admin makes users and keys of its own tenant, and nothing elsewhere.
    worker = await make_user(client, boss, "worker", ["agents:run"], None)
    assert (await me(client, worker))["id"] == f"user:{acme}/worker"
    key = await make_key(client, boss, ["agents:run"])
    assert (await me(client, key))["id"].startswith(f"key:{acme}/")
    assert (await me(client, key))["tenant"] == acme
    elsewhere = await client.post(
        "/v1/auth/users",
        json={
            "username": "spy",
            "password": PASSWORD,
            "scopes": ["agents:run"],
            "tenant_id": globex,
        },
        headers=boss,
    )
    assert_problem(elsewhere, 404, "tenant_not_found")
    assert_problem(
        await client.get("/v1/auth/users", params={"tenant_id": globex}, headers=boss),
        404,
        "tenant_not_found",
    )
    users = (await client.get("/v1/auth/users", headers=boss)).json()["items"]
    assert sorted(u["username"] for u in users) == [f"{acme}/boss", f"{acme}/worker"]
    assert {u["tenant"] for u in users} == {acme}
    keys = (await client.get("/v1/auth/api-keys", headers=boss)).json()["items"]
    assert [k["tenant"] for k in keys] == [acme]
    # The admin's listing has every tenant's, and filters by one.
    everyone = (await client.get("/v1/auth/users", headers=admin)).json()["items"]
    assert {"admin", f"{acme}/boss"} <= {u["username"] for u in everyone}
    only = (await client.get("/v1/auth/users", params={"tenant_id": acme}, headers=admin)).json()
    assert only["total"] == 2

    # The tenant record: its own readable, another's and the listing not.
    assert (await client.get(f"/v1/tenants/{acme}", headers=boss)).status_code == 200
    assert_problem(await client.get(f"/v1/tenants/{globex}", headers=boss), 404, "tenant_not_found")
    assert_problem(await client.get("/v1/tenants", headers=boss), 403, "insufficient_scope")
    changed = await client.patch(f"/v1/tenants/{acme}", json={"name": "mine"}, headers=boss)
    assert_problem(changed, 403, "insufficient_scope")  # its policy is the operator's

    # Per-user routes address a name within the tenant; another tenant's is not reachable.
    disabled = await client.post("/v1/auth/users/worker/disable", headers=boss)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert_problem(await client.get("/v1/auth/me", headers=worker), 401, "token_revoked")
    assert_problem(
        await client.get("/v1/auth/users/worker", params={"tenant_id": globex}, headers=boss),
        404,
        "tenant_not_found",
    )
    assert_problem(await client.get("/v1/auth/users/admin", headers=boss), 404, "user_not_found")

    # A default-tenant principal with tenant:admin manages nothing (admin does that there).
    plain = await make_user(client, admin, "helper", ["tenant:admin"], None)
    assert_problem(await client.get("/v1/auth/users", headers=plain), 403, "insufficient_scope")


async def test_a_tenants_policy_limits_its_agents_and_applies_at_once(
    client: AppClient,
) -> None:
    admin = await _admin(client)
    tenant = await make_tenant(client, admin, allowed_agents=["chat"])
    key = await make_key(client, admin, RUNNER_SCOPES, tenant)
    names = [a["name"] for a in (await client.get("/v1/agents", headers=key)).json()["items"]]
    assert names == ["chat"]
    assert len((await client.get("/v1/agents", headers=admin)).json()["items"]) > 1
    assert_problem(await client.get("/v1/agents/assistant", headers=key), 404, "agent_not_found")
    refused = await client.post("/v1/agents/assistant/invoke", json={"input": "hi"}, headers=key)
    assert_problem(refused, 404, "agent_not_found")
    task = await client.post("/v1/tasks", json={"agent": "assistant", "input": "hi"}, headers=key)
    assert_problem(task, 404, "agent_not_found")
    ok = await client.post("/v1/agents/chat/invoke", json={"input": "hi"}, headers=key)
    assert ok.status_code == 200, ok.text

    # A new policy holds for the next request (the change is announced to every process).
    updated = await client.patch(
        f"/v1/tenants/{tenant}", json={"policy": {"allowed_agents": ["assistant"]}}, headers=admin
    )
    assert updated.status_code == 200
    assert_problem(
        await client.post("/v1/agents/chat/invoke", json={"input": "hi"}, headers=key),
        404,
        "agent_not_found",
    )
    again = await client.post("/v1/agents/assistant/invoke", json={"input": "hi"}, headers=key)
    assert again.status_code == 200, again.text


async def test_a_tenants_budgets_replace_the_deployments(client: AppClient) -> None:
    admin = await _admin(client)
    tenant = await make_tenant(client, admin, budget_tokens_per_run=20)
    key = await make_key(client, admin, RUNNER_SCOPES, tenant)
    stopped = await client.post(
        "/v1/agents/chat/invoke", json={"input": "tell me a story"}, headers=key
    )
    assert_problem(stopped, 429, "budget_exceeded")
    run = (await client.get(f"/v1/runs/{stopped.headers['x-run-id']}", headers=key)).json()
    assert run["status"] == "incomplete" and run["error_code"] == "budget_exceeded"
    budget = (await client.get("/v1/usage/budget", headers=key)).json()
    assert budget["run_limit"] == 20
    # The default tenant follows the settings (no budget here).
    done = await client.post("/v1/agents/chat/invoke", json={"input": "tell me"}, headers=admin)
    assert done.status_code == 200, done.text

    priced = await make_tenant(client, admin, budget_usd_per_day=0.5)
    report = (
        await client.get(
            "/v1/usage/budget", headers=await make_key(client, admin, RUNNER_SCOPES, priced)
        )
    ).json()
    assert report["cost"]["day"]["limit_usd"] == 0.5 and report["cost"]["month"]["limit_usd"] == 0
    assert (await client.get("/v1/usage/budget", headers=admin)).json()["cost"] is None

    daily = await make_tenant(client, admin, budget_tokens_per_day=30)
    spender = await make_key(client, admin, RUNNER_SCOPES, daily)
    for text in ("first", "second", "third"):  # 40-token answers: the day's 30 run out
        await client.post("/v1/agents/chat/invoke", json={"input": text}, headers=spender)
    exhausted = await client.post("/v1/agents/chat/invoke", json={"input": "more"}, headers=spender)
    problem = assert_problem(exhausted, 429, "budget_exhausted")
    assert problem["window"] == "day" and problem["limit"] == 30


async def test_a_tenants_task_cap_and_rate_limit_apply_per_principal(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    settings = make_settings(
        **{**QUICK, "RATE_LIMIT_ENABLED": True, "OFFLINE_TOKENS_PER_SECOND": 5},
        REDIS_URL=redis_url_for(request, "redis"),
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        tenant = await make_tenant(client, admin, max_active_tasks=1, rate_limit="5/minute")
        key = await make_key(client, admin, RUNNER_SCOPES, tenant)
        first = await client.post("/v1/tasks", json={"agent": "chat", "input": "a"}, headers=key)
        assert first.status_code == 202, first.text
        second = await client.post("/v1/tasks", json={"agent": "chat", "input": "b"}, headers=key)
        problem = assert_problem(second, 429, "too_many_concurrent_runs")
        assert problem["limit"] == 1
        # Buckets are per route: five on this one, then refused.
        answers = [await client.get("/v1/auth/me", headers=key) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].headers["x-ratelimit-limit"] == "5"
        assert_problem(answers[5], 429, "rate_limited")
        # The deployment's limit still applies to everyone else.
        assert (await client.get("/v1/auth/me", headers=admin)).headers[
            "x-ratelimit-limit"
        ] == "120"


async def test_a_deleted_tenants_credentials_stop_at_once_and_never_come_back(
    client: AppClient,
) -> None:
    admin = await _admin(client)
    tenant = await make_tenant(client, admin)
    user = await make_user(client, admin, "ann", RUNNER_SCOPES, tenant)
    key = await make_key(client, admin, RUNNER_SCOPES, tenant)
    assert (await me(client, key))["tenant"] == tenant
    assert (await client.delete(f"/v1/tenants/{tenant}", headers=admin)).status_code == 204
    # Its keys are revoked and its users deleted with it.
    assert_problem(await client.get("/v1/auth/me", headers=key), 401, "api_key_invalid")
    assert_problem(await client.get("/v1/auth/me", headers=user), 401, "token_revoked")
    # Its id is retired: never made again, so nobody becomes one of its principals.
    again = await client.post("/v1/tenants", json={"id": tenant, "name": "n"}, headers=admin)
    assert_problem(again, 409, "tenant_id_retired")
    assert tenant not in [
        t["id"] for t in (await client.get("/v1/tenants", headers=admin)).json()["items"]
    ]
    for path, body in (
        ("/v1/auth/users", {"username": "ann", "password": PASSWORD, "scopes": ["agents:run"]}),
        ("/v1/auth/api-keys", {"name": "again", "scopes": ["agents:run"]}),
    ):
        refused = await client.post(path, json={**body, "tenant_id": tenant}, headers=admin)
        assert_problem(refused, 404, "tenant_not_found")
    assert_problem(
        await client.get(f"/v1/tenants/{tenant}", headers=admin), 404, "tenant_not_found"
    )
    assert_problem(await client.get("/v1/auth/me", headers=key), 401, "api_key_invalid")
    assert_problem(await client.get("/v1/auth/me", headers=user), 401, "token_revoked")
    relogin = await client.post(
        "/v1/auth/token", data={"username": f"{tenant}/ann", "password": PASSWORD}
    )
    assert_problem(relogin, 401, "invalid_credentials")
    # A tenant that was never made: its (forged-looking) names sign nobody in.
    ghost = await client.post(
        "/v1/auth/token", data={"username": "ghost/ann", "password": PASSWORD}
    )
    assert_problem(ghost, 401, "invalid_credentials")


async def test_a_tenants_pool_is_shared_by_its_principals_and_never_overspent(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    limit = 300
    settings = make_settings(
        **{
            **QUICK,
            "BUDGET_RESERVE_TOKENS": 80,  # each call holds ~its prompt + 80: several fit
            "OFFLINE_RESPONSE_TOKENS": 60,
            "OFFLINE_TOKENS_PER_SECOND": 400,  # the calls overlap
        },
        REDIS_URL=redis_url_for(request, "redis"),
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        tenant = await make_tenant(client, admin, pool_tokens_per_day=limit)
        keys = [await make_key(client, admin, RUNNER_SCOPES, tenant) for _ in range(3)]
        # Concurrent runs of three principals, none with a budget of its own.
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/agents/chat/invoke",
                    json={"input": f"race {n} {uuid.uuid4().hex}"},
                    headers=keys[n % 3],
                )
                for n in range(18)
            )
        )
        statuses = {a.status_code for a in answers}
        assert statuses <= {200, 429} and 200 in statuses and 429 in statuses
        report = (await client.get("/v1/usage/budget", headers=keys[0])).json()
        pool = report["tenant_pool"]
        assert pool["tenant"] == tenant and pool["day"]["limit"] == limit
        assert pool["day"]["spent"] <= limit  # all three together: within the pool
        assert report["day"]["limit"] == 0  # no budget of its own
        completed = sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)
        assert 0 < completed <= pool["day"]["spent"]
        # Spent: every principal of the tenant is refused, with the tenant named.
        refused = await client.post("/v1/agents/chat/invoke", json={"input": "x"}, headers=keys[1])
        problem = assert_problem(refused, 429, "budget_exhausted")
        assert problem["budget"] == "tenant" and problem["limit"] == limit
        task = await client.post("/v1/tasks", json={"agent": "chat", "input": "y"}, headers=keys[2])
        assert_problem(task, 429, "budget_exhausted")
        # Another tenant, and the default one, spend from their own.
        other = await make_key(client, admin, RUNNER_SCOPES, await make_tenant(client, admin))
        for auth in (other, admin):
            done = await client.post("/v1/agents/chat/invoke", json={"input": "z"}, headers=auth)
            assert done.status_code == 200, done.text
        assert (await client.get("/v1/usage/budget", headers=other)).json()["tenant_pool"] is None


async def test_a_user_made_again_with_a_deleted_users_name_gets_none_of_its_webhooks(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    """Its subscriptions go with it: otherwise the new user's runs would be sent, signed, to
    the old user's URL (principal ids are made of names)."""
    settings = make_settings(
        **QUICK, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8", REDIS_URL=redis_url_for(request, "redis")
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        scopes = ["webhooks", "agents:run"]
        old = await make_user(client, admin, "bob", scopes, None)
        hook = await client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/old-bob", "events": ["run.completed"]},
            headers=old,
        )
        assert hook.status_code == 201, hook.text
        assert (await client.delete("/v1/auth/users/bob", headers=admin)).status_code == 204
        new = await make_user(client, admin, "bob", scopes, None)
        assert (await client.get("/v1/webhooks", headers=new)).json()["items"] == []
        gone = await client.get(f"/v1/webhooks/{hook.json()['id']}", headers=new)
        assert_problem(gone, 404, "webhook_not_found")


async def test_an_admin_reads_usage_by_tenant(client: AppClient) -> None:
    admin = await _admin(client)
    tenant = await make_tenant(client, admin)
    key = await make_key(client, admin, RUNNER_SCOPES, tenant)
    for auth, text in ((key, "from the tenant"), (admin, "from the default tenant")):
        done = await client.post("/v1/agents/chat/invoke", json={"input": text}, headers=auth)
        assert done.status_code == 200, done.text

    async def by_tenant() -> dict[str, int] | None:
        report = await client.get(
            "/v1/usage", params={"principal": "*", "group_by": "tenant"}, headers=admin
        )
        assert report.status_code == 200, report.text
        calls = {item["tenant"]: item["calls"] for item in report.json()["items"]}
        return calls if len(calls) == 2 else None

    deadline = asyncio.get_running_loop().time() + 10
    while (calls := await by_tenant()) is None:
        assert asyncio.get_running_loop().time() < deadline, "usage never reached the ledger"
        await asyncio.sleep(0.05)
    assert calls == {"default": 1, tenant: 1}

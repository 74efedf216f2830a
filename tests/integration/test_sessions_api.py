"""Session routes through the full middleware chain, against both store backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.llm.types import ChatMessage
from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem
from tests.support.redis_server import RedisServer

Headers = dict[str, str]
MISSING_ID = "0" * 32


async def bearer(client: httpx.AsyncClient) -> Headers:
    return {"Authorization": f"Bearer {await login(client)}"}


async def api_key(
    client: httpx.AsyncClient, admin: Headers, scopes: list[str], name: str
) -> Headers:
    response = await client.post(
        "/v1/auth/api-keys", json={"name": name, "scopes": scopes}, headers=admin
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def create(
    client: httpx.AsyncClient, headers: Headers, agent: str = "chat"
) -> dict[str, Any]:
    response = await client.post("/v1/sessions", json={"agent": agent}, headers=headers)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


async def test_session_lifecycle(any_client: httpx.AsyncClient) -> None:
    admin = await bearer(any_client)
    response = await any_client.post("/v1/sessions", json={"agent": "chat"}, headers=admin)
    assert response.status_code == 201, response.text
    session = response.json()
    assert set(session) == {"id", "agent", "owner", "created_at", "updated_at", "message_count"}
    assert (session["agent"], session["owner"], session["message_count"]) == (
        "chat",
        "user:admin",
        0,
    )
    assert response.headers["location"] == f"/v1/sessions/{session['id']}"

    fetched = await any_client.get(f"/v1/sessions/{session['id']}", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json() == session

    listed = await any_client.get("/v1/sessions", headers=admin)
    assert listed.status_code == 200
    assert listed.json() == {"items": [session], "total": 1, "limit": 20, "offset": 0}

    history = await any_client.get(f"/v1/sessions/{session['id']}/messages", headers=admin)
    assert history.status_code == 200
    assert history.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}

    deleted = await any_client.delete(f"/v1/sessions/{session['id']}", headers=admin)
    assert deleted.status_code == 204
    assert deleted.content == b""
    for method, path in [
        ("GET", f"/v1/sessions/{session['id']}"),
        ("GET", f"/v1/sessions/{session['id']}/messages"),
        ("DELETE", f"/v1/sessions/{session['id']}"),
    ]:
        response = await any_client.request(method, path, headers=admin)
        assert_problem(response, 404, "session_not_found")
    listed = await any_client.get("/v1/sessions", headers=admin)
    assert listed.json()["total"] == 0


async def test_messages_are_paginated_oldest_first(any_client: AppClient) -> None:
    admin = await bearer(any_client)
    session = await create(any_client, admin)
    store = any_client.services.sessions.store
    history = [
        ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"m{i}") for i in range(5)
    ]
    await store.append(session["id"], history)

    response = await any_client.get(
        f"/v1/sessions/{session['id']}/messages", params={"limit": 2, "offset": 1}, headers=admin
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 1)
    assert [(m["role"], m["content"]) for m in body["items"]] == [
        ("assistant", "m1"),
        ("user", "m2"),
    ]
    fetched = await any_client.get(f"/v1/sessions/{session['id']}", headers=admin)
    assert fetched.json()["message_count"] == 5
    assert fetched.json()["updated_at"] > session["updated_at"]


async def test_sessions_list_newest_first_with_pagination(any_client: httpx.AsyncClient) -> None:
    admin = await bearer(any_client)
    agents = ["chat", "assistant", "approval", "chat", "assistant"]
    ids = [(await create(any_client, admin, agent=name))["id"] for name in agents]
    newest_first = ids[::-1]

    response = await any_client.get("/v1/sessions", params={"limit": 2}, headers=admin)
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 0)
    assert [s["id"] for s in body["items"]] == newest_first[:2]

    response = await any_client.get("/v1/sessions", params={"limit": 2, "offset": 4}, headers=admin)
    assert [s["id"] for s in response.json()["items"]] == newest_first[4:]
    response = await any_client.get(
        "/v1/sessions", params={"limit": 100, "offset": 10}, headers=admin
    )
    assert response.json()["items"] == [] and response.json()["total"] == 5


ROUTES = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", f"/v1/sessions/{MISSING_ID}"),
    ("GET", f"/v1/sessions/{MISSING_ID}/messages"),
    ("DELETE", f"/v1/sessions/{MISSING_ID}"),
]


async def test_every_route_requires_credentials(any_client: httpx.AsyncClient) -> None:
    for method, path in ROUTES:
        body = {"agent": "chat"} if method == "POST" else None
        response = await any_client.request(method, path, json=body)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_scopes_are_enforced(any_client: httpx.AsyncClient) -> None:
    admin = await bearer(any_client)
    reader = await api_key(any_client, admin, ["sessions:read"], "reader")
    runner = await api_key(any_client, admin, ["agents:run"], "runner")

    response = await any_client.post("/v1/sessions", json={"agent": "chat"}, headers=reader)
    body = assert_problem(response, 403, "insufficient_scope")
    assert "sessions:write" in body["detail"]
    response = await any_client.delete(f"/v1/sessions/{MISSING_ID}", headers=reader)
    assert_problem(response, 403, "insufficient_scope")
    assert (await any_client.get("/v1/sessions", headers=reader)).status_code == 200

    for method, path in ROUTES[1:4]:
        response = await any_client.request(method, path, headers=runner)
        body = assert_problem(response, 403, "insufficient_scope")
        assert "sessions:read" in body["detail"]


async def test_another_principals_session_is_not_found(any_client: httpx.AsyncClient) -> None:
    admin = await bearer(any_client)
    scopes = ["sessions:read", "sessions:write"]
    alice = await api_key(any_client, admin, scopes, "alice")
    bob = await api_key(any_client, admin, scopes, "bob")
    session = await create(any_client, alice)
    assert session["owner"].startswith("key:")

    for method, path in [
        ("GET", f"/v1/sessions/{session['id']}"),
        ("GET", f"/v1/sessions/{session['id']}/messages"),
        ("DELETE", f"/v1/sessions/{session['id']}"),
    ]:
        response = await any_client.request(method, path, headers=bob)
        body = assert_problem(response, 404, "session_not_found")
        missing = await any_client.request(
            method, path.replace(session["id"], MISSING_ID), headers=bob
        )
        assert missing.json()["detail"] == body["detail"]  # indistinguishable from missing

    assert (await any_client.get("/v1/sessions", headers=bob)).json()["total"] == 0
    still = await any_client.get(f"/v1/sessions/{session['id']}", headers=alice)
    assert still.status_code == 200
    listed = (await any_client.get("/v1/sessions", headers=alice)).json()
    assert [s["id"] for s in listed["items"]] == [session["id"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "agent"]),
        ({"agent": ""}, ["body", "agent"]),
        ({"agent": "Not A Name"}, ["body", "agent"]),
        ({"agent": "x" * 65}, ["body", "agent"]),
        ({"agent": 7}, ["body", "agent"]),
        ({"agent": "chat", "extra": 1}, ["body", "extra"]),
    ],
)
async def test_bad_create_body_is_422(
    any_client: httpx.AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    admin = await bearer(any_client)
    response = await any_client.post("/v1/sessions", json=body, headers=admin)
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == loc


async def test_bad_pagination_is_422(any_client: httpx.AsyncClient) -> None:
    admin = await bearer(any_client)
    session = await create(any_client, admin)
    for path in ("/v1/sessions", f"/v1/sessions/{session['id']}/messages"):
        for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}):
            response = await any_client.get(path, params=params, headers=admin)
            assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    "session_id",
    ["not-an-id", "A" * 32, "0" * 31, "0" * 33, "g" * 32, "00000000-0000-0000-0000-000000000000"],
)
async def test_malformed_session_id_is_404_not_422(
    any_client: httpx.AsyncClient, session_id: str
) -> None:
    admin = await bearer(any_client)
    for method, suffix in [("GET", ""), ("GET", "/messages"), ("DELETE", "")]:
        response = await any_client.request(
            method, f"/v1/sessions/{session_id}{suffix}", headers=admin
        )
        assert_problem(response, 404, "session_not_found")


async def test_openapi_documents_problems_and_scopes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"post", "get"} <= paths["/v1/sessions"].keys()
    assert {"get", "delete"} <= paths["/v1/sessions/{session_id}"].keys()
    item = paths["/v1/sessions/{session_id}"]
    for operation in (
        item["get"],
        item["delete"],
        paths["/v1/sessions/{session_id}/messages"]["get"],
    ):
        assert {"401", "403", "404"} <= operation["responses"].keys()
        assert operation["tags"] == ["sessions"]
    assert {"401", "403", "422"} <= paths["/v1/sessions"]["post"]["responses"].keys()
    assert "204" in item["delete"]["responses"]
    security = paths["/v1/sessions"]["post"]["security"]
    assert {"OAuth2PasswordBearer": ["sessions:write"]} in security


async def test_redis_down_is_503_and_recovers(
    make_settings: SettingsFactory, running_redis: RedisServer
) -> None:
    async with app_client(make_settings(REDIS_URL=running_redis.url)) as client:
        admin = await bearer(client)  # a JWT: checking it needs no Redis
        session = await create(client, admin)
        running_redis.stop()
        try:
            response = await client.get(f"/v1/sessions/{session['id']}", headers=admin)
            assert_problem(response, 503, "dependency_unavailable")
        finally:
            running_redis.start()
        # The test server keeps no data across a restart: recovery means new sessions work.
        await create(client, admin)


async def test_session_for_an_agent_not_served_is_404(any_client: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {await login(any_client)}"}
    response = await any_client.post("/v1/sessions", json={"agent": "ghost"}, headers=admin)
    assert response.status_code == 404
    assert response.json()["code"] == "agent_not_found"

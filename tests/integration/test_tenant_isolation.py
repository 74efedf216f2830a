"""Tenant isolation, route by route, in-process on the memory stores and a real Redis.

Two tenants, `acme` and `globex`, each with a user signed in with a token and an API key
(every non-admin scope, `tenant:admin` and `webhooks` included; the user has the same local
name, `ann`, in both). Each makes one of everything it can (sessions, live runs waiting for
an answer, responses, AG-UI threads, background tasks, webhooks and deliveries, usage, users
and keys), then the other tenant's two principals try each of its ids on every route that
takes one, and every listing: REST, SSE, WebSocket, and the protocol surfaces (OpenAI chat
completions and responses, AG-UI, A2A in both method generations, MCP tasks and stateful MCP
sessions). Every attempt must be refused the way the route documents (404 and its problem
code, 403 where the contract says so, or the surface's own not-found), and must change
nothing: the owner checks afterwards that the thing is still there and unchanged (not
cancelled, not answered, same history). The owner then succeeds with the same id on the same
routes, so no refusal passes for want of a real target.

Also: tenant admins are confined to their own tenant (users, keys, tenant record, usage) and
cannot mint `admin`; the same local name, a default-tenant user named like a tenant, and one
OIDC subject in two tenants are distinct principals; the LLM cache (CACHE_SCOPE global and
tenant), idempotency keys and rate-limit buckets never cross tenants; deleting a tenant leaves
the other alone, and its id is never used again.

WebSockets are driven with Starlette's TestClient (httpx's ASGITransport cannot upgrade);
MCP tasks are read stateless (MCP_STATELESS), so that each answer ends with its request.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest
from mcp import ClientSession, types
from mcp.shared.exceptions import McpError
from starlette.exceptions import StarletteDeprecationWarning
from starlette.websockets import WebSocketDisconnect

from app.core.config import Settings
from app.main import create_app
from app.services import build_services
from tests.conftest import (
    ADMIN_PASSWORD,
    AppClient,
    SettingsFactory,
    app_client,
    login,
    redis_url_for,
)
from tests.integration.test_auth_api import assert_problem
from tests.support.a2a_webhooks import WebhookReceiver
from tests.support.fake_idp import FakeIdP
from tests.support.mcp_client import MCP_TIMEOUT, mcp_session
from tests.support.sse import parse_lines

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Auth = dict[str, str]

TENANTS = ("acme", "globex")
USER = "ann"  # the same local name in both tenants: ids must still differ
PASSWORD = "tenant-password-123"
SCOPES = [
    "agents:run",
    "sessions:read",
    "sessions:write",
    "tasks:read",
    "tasks:write",
    "webhooks",
    "tenant:admin",
]
QUICK: dict[str, Any] = {
    "OFFLINE_LATENCY_MS": 0,
    "OFFLINE_TOKENS_PER_SECOND": 0,
    "OFFLINE_RESPONSE_TOKENS": 20,
    "RATE_LIMIT_ENABLED": False,
    "TASK_LEASE_SECONDS": 3,
    # Tasks and runs left waiting for an answer must not hold up app shutdown.
    "WORKER_SHUTDOWN_GRACE_SECONDS": 0.2,
    "MCP_STATELESS": True,
}
WEBHOOKS_FAST: dict[str, Any] = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_BACKOFF_SECONDS": 0.05,
    "WEBHOOK_MAX_BACKOFF_SECONDS": 0.2,
    "WEBHOOK_POLL_SECONDS": 0.05,
    "WEBHOOK_TIMEOUT_SECONDS": 5.0,
}
A2A = {"A2A-Version": "1.0"}
A2A_TASK_NOT_FOUND = -32001
V03_REPLY = {
    "role": "user",
    "messageId": "m-03",
    "kind": "message",
    "parts": [{"kind": "text", "text": "low"}],
}
A2A_INVALID_PARAMS = -32602
FINISHED = frozenset({"completed", "failed", "cancelled", "incomplete"})


# -- the two tenants ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    id: str
    user: Auth  # `<tenant>/ann` signed in with a token
    key: Auth  # an API key of the tenant
    user_id: str  # principal ids, as GET /v1/auth/me shows them
    key_id: str
    key_record: str  # the API key's id in /v1/auth/api-keys

    @property
    def principals(self) -> tuple[Auth, Auth]:
        return (self.user, self.key)


Pairs = tuple[tuple[Tenant, Tenant], tuple[Tenant, Tenant]]


def _pairs(acme: Tenant, globex: Tenant) -> Pairs:
    """(owner, other) both ways: each tenant's things are tried by the other's principals."""
    return ((acme, globex), (globex, acme))


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def _bearer(token: str) -> Auth:
    return {"Authorization": f"Bearer {token}"}


class _Answer(Protocol):
    """An httpx or (TestClient's) httpx2 response."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def _created(response: _Answer) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _tenant_requests(tenant: str, policy: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/v1/tenants", {"id": tenant, "name": tenant.title(), "policy": policy}),
        (
            "/v1/auth/users",
            {"username": USER, "password": PASSWORD, "scopes": SCOPES, "tenant_id": tenant},
        ),
    ]


def _tenant_of(tenant: str, token: str, key: dict[str, Any], me: list[dict[str, Any]]) -> Tenant:
    user_me, key_me = me
    for seen in me:
        assert seen["tenant"] == tenant and sorted(seen["scopes"]) == sorted(SCOPES), seen
    assert user_me["id"] == f"user:{tenant}/{USER}" and user_me["kind"] == "user"
    assert key_me["id"] == f"key:{tenant}/{key['id']}" and key_me["kind"] == "api_key"
    return Tenant(
        id=tenant,
        user=_bearer(token),
        key={"X-API-Key": key["key"]},
        user_id=user_me["id"],
        key_id=key_me["id"],
        key_record=key["id"],
    )


def _key_body(tenant: str) -> dict[str, Any]:
    return {"name": f"{tenant}-key", "scopes": SCOPES, "tenant_id": tenant}


async def _admin(client: httpx.AsyncClient) -> Auth:
    return _bearer(await login(client))


async def _tenants(client: httpx.AsyncClient, **policy: Any) -> tuple[Tenant, Tenant]:
    """acme and globex (with ``policy``), made by the default tenant's admin."""
    admin = await _admin(client)
    made: list[Tenant] = []
    for tenant in TENANTS:
        for path, body in _tenant_requests(tenant, policy):
            _created(await client.post(path, json=body, headers=admin))
        token = await login(client, PASSWORD, f"{tenant}/{USER}")
        key = _created(
            await client.post("/v1/auth/api-keys", json=_key_body(tenant), headers=admin)
        )
        auths = (_bearer(token), {"X-API-Key": key["key"]})
        me = [(await client.get("/v1/auth/me", headers=auth)).json() for auth in auths]
        made.append(_tenant_of(tenant, token, key, me))
    return made[0], made[1]


def _tenants_sync(client: TestClient) -> tuple[Tenant, Tenant]:
    """_tenants over Starlette's TestClient (the WebSocket test)."""
    form = {"username": "admin", "password": ADMIN_PASSWORD}
    admin = _bearer(client.post("/v1/auth/token", data=form).json()["access_token"])
    made: list[Tenant] = []
    for tenant in TENANTS:
        for path, body in _tenant_requests(tenant, {}):
            _created(client.post(path, json=body, headers=admin))
        form = {"username": f"{tenant}/{USER}", "password": PASSWORD}
        token = client.post("/v1/auth/token", data=form).json()["access_token"]
        key = _created(client.post("/v1/auth/api-keys", json=_key_body(tenant), headers=admin))
        auths = (_bearer(token), {"X-API-Key": key["key"]})
        me = [client.get("/v1/auth/me", headers=auth).json() for auth in auths]
        made.append(_tenant_of(tenant, token, key, me))
    return made[0], made[1]


# -- apps ----------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str, **values: Any
) -> Settings:
    overrides: dict[str, Any] = {**QUICK, **values}
    if topology != "memory":
        overrides["REDIS_URL"] = redis_url_for(request, topology)
    return make_settings(**overrides)


@pytest.fixture
async def client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> AsyncIterator[AppClient]:
    async with app_client(_settings(request, make_settings, topology)) as http:
        yield http


# -- probes: what every refusal must look like -------------------------------------------------


async def _refused(
    client: httpx.AsyncClient,
    attackers: tuple[Auth, ...],
    method: str,
    path: str,
    status: int,
    code: str,
    **kwargs: Any,
) -> None:
    """Each attacker gets the route's documented problem (problem+json, status and code)."""
    for auth in attackers:
        response = await client.request(method, path, headers=auth, **kwargs)
        try:
            assert_problem(response, status, code)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from None


async def _openai_refused(
    client: httpx.AsyncClient,
    attackers: tuple[Auth, ...],
    method: str,
    path: str,
    code: str,
    *,
    param: str | None = None,
    **kwargs: Any,
) -> None:
    """The OpenAI routes' not-found: 404 in OpenAI's error shape, our code in `code`."""
    for auth in attackers:
        response = await client.request(method, path, headers=auth, **kwargs)
        assert response.status_code == 404, f"{method} {path}: {response.text}"
        error = response.json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error", error
        if param is not None:
            assert error["param"] == param, error


async def _rpc(
    client: httpx.AsyncClient, auth: Auth, agent: str, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    """An A2A JSON-RPC call; its response object. 1.0's method names are sent with the
    A2A-Version header, 0.3's (`tasks/get`) without, as their clients do."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    headers = auth if "/" in method else {**auth, **A2A}
    response = await client.post(f"/a2a/{agent}", json=body, headers=headers)
    assert response.status_code == 200, f"{method}: {response.text}"
    if response.headers["content-type"].startswith("text/event-stream"):
        frames = [f for f in parse_lines(iter(response.text.splitlines())) if f.data]
        first: dict[str, Any] = frames[0].json
        return first
    answer: dict[str, Any] = response.json()
    return answer


def _our_code(error: dict[str, Any]) -> str:
    """Our problem code in an A2A error: an ErrorInfo's metadata (1.0), or `data` (0.3)."""
    data = error["data"]
    code = data[0]["metadata"]["code"] if isinstance(data, list) else data["code"]
    return str(code)


async def _a2a_refused(
    client: httpx.AsyncClient,
    attackers: tuple[Auth, ...],
    agent: str,
    method: str,
    params: dict[str, Any],
    code: int = A2A_TASK_NOT_FOUND,
    ours: str = "task_not_found",
) -> None:
    """A2A's own not-found (JSON-RPC error ``code``), carrying our code ``ours``."""
    for auth in attackers:
        answer = await _rpc(client, auth, agent, method, params)
        assert "result" not in answer, f"{method}: {answer}"
        error = answer["error"]
        assert (error["code"], _our_code(error)) == (code, ours), f"{method}: {answer}"


async def _ok(response: Awaitable[httpx.Response], status: int = 200) -> Any:
    answer = await response
    assert answer.status_code == status, f"{answer.request.url}: {answer.text}"
    return answer.json() if answer.content else None


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


def _sse(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """The (event, data) of each frame of a finished SSE answer."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_lines(iter(response.text.splitlines()))
    return [(frame.event, frame.json) for frame in frames if frame.data]


def _agui_events(response: httpx.Response) -> list[dict[str, Any]]:
    return [data for _, data in _sse(response)]


def _run_input(thread: str, text: str | None, **extra: Any) -> dict[str, Any]:
    messages = [{"id": uuid.uuid4().hex, "role": "user", "content": text}] if text else []
    return {
        "threadId": thread,
        "runId": str(uuid.uuid4()),
        "messages": messages,
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        **extra,
    }


async def _record(client: httpx.AsyncClient, auth: Auth, path: str) -> dict[str, Any]:
    body: dict[str, Any] = await _ok(client.get(path, headers=auth))
    return body


async def _ids(client: httpx.AsyncClient, auth: Auth, path: str, field: str) -> set[str]:
    body = await _record(client, auth, path)
    return {str(item[field]) for item in body["items"]}


def _asking(record: dict[str, Any], not_id: str = "", steps: int = 0) -> bool:
    """The approval agent's run waits at a question (another than ``not_id``), with
    ``steps`` steps counted: a task's step count is written just after its question, so a
    snapshot taken before would see the count change by itself."""
    pending: dict[str, Any] = record.get("pending_input") or {}
    return bool(
        record["status"] == "input_required"
        and pending.get("request_id", not_id) != not_id
        and record["steps_taken"] >= steps
    )


async def _waiting(
    client: httpx.AsyncClient, auth: Auth, path: str, not_id: str = "", steps: int = 0
) -> Any:
    """The record at ``path`` once it waits for an answer (to another request than not_id)."""

    async def check() -> dict[str, Any] | None:
        record = await _record(client, auth, path)
        if _asking(record, not_id, steps):
            return record
        assert record["status"] not in FINISHED, record
        return None

    return await _until(check, f"{path} to ask for input")


async def _finished(client: httpx.AsyncClient, auth: Auth, path: str) -> Any:
    async def check() -> dict[str, Any] | None:
        record = await _record(client, auth, path)
        return record if record["status"] in FINISHED else None

    return await _until(check, f"{path} to finish")


# -- sessions: REST, and every route that takes a session id --------------------------------


async def test_sessions_of_another_tenant_are_not_found_anywhere(client: AppClient) -> None:
    acme, globex = await _tenants(client)
    for owner, other in _pairs(acme, globex):
        await _session_isolation(client, owner, other)


async def _session_isolation(client: AppClient, owner: Tenant, other: Tenant) -> None:
    session = _created(
        await client.post("/v1/sessions", json={"agent": "chat"}, headers=owner.user)
    )
    sid = session["id"]
    await _ok(
        client.post(
            "/v1/agents/chat/invoke",
            json={"input": _unique("Remember tea"), "session_id": sid},
            headers=owner.user,
        )
    )
    history = await _record(client, owner.user, f"/v1/sessions/{sid}/messages")
    assert history["total"] == 2
    other_tasks = (await _record(client, other.user, "/v1/tasks"))["total"]
    attackers = other.principals
    text = _unique("Whose session is this?")

    await _refused(client, attackers, "GET", f"/v1/sessions/{sid}", 404, "session_not_found")
    await _refused(
        client, attackers, "GET", f"/v1/sessions/{sid}/messages", 404, "session_not_found"
    )
    await _refused(client, attackers, "DELETE", f"/v1/sessions/{sid}", 404, "session_not_found")
    for if_busy in ("reject", "enqueue", "interrupt", "rollback"):
        body = {"input": text, "session_id": sid, "if_busy": if_busy}
        for route in ("invoke", "stream"):
            await _refused(
                client,
                attackers,
                "POST",
                f"/v1/agents/chat/{route}",
                404,
                "session_not_found",
                json=body,
            )
    await _refused(
        client,
        attackers,
        "POST",
        "/v1/tasks",
        404,
        "session_not_found",
        json={"agent": "chat", "input": text, "session_id": sid},
    )
    await _refused(
        client,
        attackers,
        "POST",
        "/v1/agents/chat/ag-ui",
        404,
        "session_not_found",
        json=_run_input(sid, text),
    )
    for stream in (False, True):
        await _openai_refused(
            client,
            attackers,
            "POST",
            "/v1/chat/completions",
            "session_not_found",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": text}],
                "session_id": sid,
                "stream": stream,
            },
        )
    context = {"role": "ROLE_USER", "messageId": uuid.uuid4().hex, "parts": [{"text": text}]}
    await _a2a_refused(
        client,
        attackers,
        "chat",
        "SendMessage",
        {"message": {**context, "contextId": sid}},
        A2A_INVALID_PARAMS,
        "session_not_found",
    )
    for auth in attackers:
        assert sid not in await _ids(client, auth, "/v1/sessions", "id")
        runs = await _record(client, auth, f"/v1/runs?session_id={sid}")
        assert runs["items"] == [] and runs["total"] == 0
        context_tasks = await _rpc(client, auth, "chat", "ListTasks", {"contextId": sid})
        assert context_tasks["result"].get("tasks", []) == []

    # Nothing changed: the owner's session has the same history; no task was made.
    assert await _record(client, owner.user, f"/v1/sessions/{sid}/messages") == history
    assert (await _record(client, owner.user, f"/v1/sessions/{sid}"))["message_count"] == 2
    assert (await _record(client, other.user, "/v1/tasks"))["total"] == other_tasks

    # The owner, with the same id, everywhere.
    assert (await _record(client, owner.user, f"/v1/sessions/{sid}"))["id"] == sid
    assert sid in await _ids(client, owner.user, "/v1/sessions", "id")
    body = {"input": _unique("And coffee?"), "session_id": sid}
    await _ok(client.post("/v1/agents/chat/invoke", json=body, headers=owner.user))
    streamed = await client.post("/v1/agents/chat/stream", json=body, headers=owner.user)
    assert _sse(streamed)[-1][0] == "run_completed"
    completion = await _ok(
        client.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": "more"}],
                "session_id": sid,
            },
            headers=owner.user,
        )
    )
    assert completion["agent_run"]["session_id"] == sid
    agui = await client.post(
        "/v1/agents/chat/ag-ui", json=_run_input(sid, "and now?"), headers=owner.user
    )
    assert _agui_events(agui)[-1]["type"] == "RUN_FINISHED"
    sent = await _rpc(
        client, owner.user, "chat", "SendMessage", {"message": {**context, "contextId": sid}}
    )
    assert sent["result"]["task"]["contextId"] == sid, sent
    task = await _ok(
        client.post(
            "/v1/tasks",
            json={"agent": "chat", "input": text, "session_id": sid},
            headers=owner.user,
        ),
        202,
    )
    await _finished(client, owner.user, f"/v1/tasks/{task['task_id']}")
    runs = await _record(client, owner.user, f"/v1/runs?session_id={sid}")
    assert runs["total"] == 7  # invoke, invoke, stream, completion, AG-UI, A2A, task
    assert (await _record(client, owner.user, f"/v1/sessions/{sid}"))["message_count"] == 14
    await _ok(client.delete(f"/v1/sessions/{sid}", headers=owner.user), 204)
    await _refused(client, (owner.user,), "GET", f"/v1/sessions/{sid}", 404, "session_not_found")


# -- live foreground runs, responses and AG-UI interrupts ------------------------------------


async def test_live_runs_responses_and_interrupts_of_another_tenant_are_not_found(
    client: AppClient,
) -> None:
    acme, globex = await _tenants(client)
    for owner, other in _pairs(acme, globex):
        await _live_run_isolation(client, owner, other)


async def _live_run_isolation(client: AppClient, owner: Tenant, other: Tenant) -> None:
    # A response whose run asks a question: a live foreground run, waiting for its answer.
    asked = await _ok(
        client.post(
            "/v1/responses",
            json={"model": "approval", "input": _unique("Restart the cache")},
            headers=owner.user,
        )
    )
    assert asked["status"] == "incomplete", asked
    response_id = asked["id"]
    run_id = response_id.removeprefix("resp_")
    run = await _waiting(client, owner.user, f"/v1/runs/{run_id}")
    question = run["pending_input"]
    # An AG-UI thread whose run waits on an interrupt.
    thread = str(uuid.uuid4())
    started = await client.post(
        "/v1/agents/approval/ag-ui",
        json=_run_input(thread, _unique("Archive the reports")),
        headers=owner.user,
    )
    finished = _agui_events(started)[-1]
    assert finished["type"] == "RUN_FINISHED" and finished["outcome"]["type"] == "interrupt"
    (interrupt,) = finished["outcome"]["interrupts"]
    agui_run = started.headers["x-run-id"]
    agui_record = await _waiting(client, owner.user, f"/v1/runs/{agui_run}")
    attackers = other.principals

    for live in (run_id, agui_run):
        await _refused(client, attackers, "GET", f"/v1/runs/{live}", 404, "run_not_found")
        await _refused(client, attackers, "GET", f"/v1/runs/{live}/events", 404, "run_not_found")
        await _refused(client, attackers, "POST", f"/v1/runs/{live}/cancel", 404, "run_not_found")
        await _refused(
            client, attackers, "GET", f"/v1/agents/approval/ag-ui/runs/{live}", 404, "run_not_found"
        )
    for live, pending in ((run_id, question), (agui_run, agui_record["pending_input"])):
        await _refused(
            client,
            attackers,
            "POST",
            f"/v1/runs/{live}/input",
            404,
            "run_not_found",
            json={"request_id": pending["request_id"], "value": "low"},
        )
    # The run's session is held by it: another tenant can neither join, queue nor interrupt.
    for if_busy in ("reject", "enqueue", "interrupt", "rollback"):
        await _refused(
            client,
            attackers,
            "POST",
            "/v1/agents/approval/invoke",
            404,
            "session_not_found",
            json={"input": "x", "session_id": run["session_id"], "if_busy": if_busy},
        )
    for method, path in (
        ("GET", f"/v1/responses/{response_id}"),
        ("GET", f"/v1/responses/{response_id}?stream=true"),
        ("POST", f"/v1/responses/{response_id}/cancel"),
        ("DELETE", f"/v1/responses/{response_id}"),
    ):
        await _openai_refused(client, attackers, method, path, "response_not_found")
    for background in (False, True):
        await _openai_refused(
            client,
            attackers,
            "POST",
            "/v1/responses",
            "response_not_found",
            param="previous_response_id",
            json={
                "model": "approval",
                "input": "low",
                "previous_response_id": response_id,
                "background": background,
            },
        )
    # AG-UI resumes naming the owner's interrupts: on its thread, or on the attacker's own.
    interrupts = [
        (thread, interrupt["id"]),
        (run["session_id"], f"{run_id}.{question['request_id']}"),
        (str(uuid.uuid4()), interrupt["id"]),
    ]
    for on_thread, interrupt_id in interrupts:
        for status in ("resolved", "cancelled"):
            resume = [{"interruptId": interrupt_id, "status": status, "payload": "low"}]
            for auth in attackers:
                refused = await client.post(
                    "/v1/agents/approval/ag-ui",
                    json=_run_input(on_thread, None, resume=resume),
                    headers=auth,
                )
                events = _agui_events(refused)
                assert [(e["type"], e.get("code")) for e in events] == [
                    ("RUN_ERROR", "interrupt_not_found")
                ], events
    for auth in attackers:
        assert not {run_id, agui_run} & await _ids(client, auth, "/v1/runs", "run_id")

    # Nothing changed: both runs still wait for the same answers.
    still = await _record(client, owner.user, f"/v1/runs/{run_id}")
    assert still["status"] == "input_required" and still["pending_input"] == question
    again = await _record(client, owner.user, f"/v1/runs/{agui_run}")
    assert again["status"] == "input_required"
    assert again["pending_input"] == agui_record["pending_input"]
    kept = await _record(client, owner.user, f"/v1/responses/{response_id}")
    assert kept["status"] == "incomplete" and kept["output"] == asked["output"]

    # The owner, with the same ids.
    assert {run_id, agui_run} <= await _ids(client, owner.user, "/v1/runs", "run_id")
    replay = await client.get(f"/v1/agents/approval/ag-ui/runs/{agui_run}", headers=owner.user)
    assert _agui_events(replay)[-1]["outcome"]["type"] == "interrupt"
    answer = [{"interruptId": interrupt["id"], "status": "resolved", "payload": "low"}]
    resumed = await client.post(
        "/v1/agents/approval/ag-ui",
        json=_run_input(thread, None, resume=answer),
        headers=owner.user,
    )
    (confirm,) = _agui_events(resumed)[-1]["outcome"]["interrupts"]
    cancel = [{"interruptId": confirm["id"], "status": "cancelled"}]
    ended = await client.post(
        "/v1/agents/approval/ag-ui",
        json=_run_input(thread, None, resume=cancel),
        headers=owner.user,
    )
    assert _agui_events(ended)[-1]["outcome"]["type"] == "cancelled"
    await _ok(
        client.post(
            f"/v1/runs/{run_id}/input",
            json={"request_id": question["request_id"], "value": "low"},
            headers=owner.user,
        ),
        202,
    )
    await _waiting(client, owner.user, f"/v1/runs/{run_id}", not_id=question["request_id"])
    await _ok(client.post(f"/v1/runs/{run_id}/cancel", headers=owner.user), 202)
    assert (await _finished(client, owner.user, f"/v1/runs/{run_id}"))["status"] == "cancelled"
    logged = _sse(await client.get(f"/v1/runs/{run_id}/events", headers=owner.user))
    assert logged[-1][0] == "error" and logged[-1][1]["code"] == "cancelled"
    assert (await _record(client, owner.user, f"/v1/responses/{response_id}"))["id"] == response_id
    streamed = await client.get(f"/v1/responses/{response_id}?stream=true", headers=owner.user)
    assert streamed.status_code == 200 and streamed.text
    follow = await _ok(
        client.post(
            "/v1/responses",
            json={"model": "approval", "input": "again", "previous_response_id": response_id},
            headers=owner.user,
        )
    )
    assert follow["previous_response_id"] == response_id
    await _ok(client.post(f"/v1/responses/{follow['id']}/cancel", headers=owner.user))
    await _ok(client.post(f"/v1/responses/{response_id}/cancel", headers=owner.user))
    deleted = await _ok(client.delete(f"/v1/responses/{response_id}", headers=owner.user))
    assert deleted == {"id": response_id, "object": "response.deleted", "deleted": True}


# -- background tasks: REST, SSE, A2A and MCP ------------------------------------------------


@pytest.fixture
async def push_client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> AsyncIterator[AppClient]:
    """A2A push configs may name loopback (nothing listens: deliveries just fail)."""
    settings = _settings(request, make_settings, topology, A2A_PUSH_ALLOW_PRIVATE_URLS=True)
    async with app_client(settings) as http:
        yield http


@asynccontextmanager
async def _mcp(client: AppClient, auth: Auth) -> AsyncIterator[ClientSession]:
    """An MCP session on the app, in a client of its own (mcp_session sets the headers)."""
    http = httpx.AsyncClient(
        transport=client._transport, base_url="http://test", timeout=MCP_TIMEOUT
    )
    async with mcp_session("http://test/mcp", headers=auth, http=http) as session:
        with warnings.catch_warnings():  # the SDK's tasks API is marked experimental
            warnings.simplefilter("ignore", DeprecationWarning)
            yield session


async def test_tasks_of_another_tenant_are_not_found_on_any_surface(push_client: AppClient) -> None:
    acme, globex = await _tenants(push_client)
    for owner, other in _pairs(acme, globex):
        await _task_isolation(push_client, owner, other)


TASK_READS = ("", "/result", "/steps", "/tools", "/plan", "/memory", "/events")


async def _task_isolation(client: AppClient, owner: Tenant, other: Tenant) -> None:
    submitted = await _ok(
        client.post(
            "/v1/tasks",
            json={"agent": "approval", "input": _unique("Scale the web tier")},
            headers=owner.user,
        ),
        202,
    )
    task_id = submitted["task_id"]
    path = f"/v1/tasks/{task_id}"
    before = await _waiting(client, owner.user, path, steps=1)
    question = before["pending_input"]

    async def step_logged() -> dict[str, Any] | None:  # the log is written in batches
        logged = await _record(client, owner.user, f"{path}/steps")
        return logged if logged["total"] == before["steps_taken"] else None

    steps = await _until(step_logged, "the first step in the task's log")
    hook = {"taskId": task_id, "id": "hook-1", "url": "http://127.0.0.1:9/hook"}
    made = await _rpc(client, owner.user, "approval", "CreateTaskPushNotificationConfig", hook)
    assert made["result"]["id"] == "hook-1", made
    attackers = other.principals

    for read in TASK_READS:
        await _refused(client, attackers, "GET", f"{path}{read}", 404, "task_not_found")
    await _refused(client, attackers, "GET", f"/v1/stream/tasks/{task_id}", 404, "task_not_found")
    await _refused(client, attackers, "DELETE", path, 404, "task_not_found")
    for action in ("pause", "resume", "stop"):
        await _refused(
            client,
            attackers,
            "POST",
            f"{path}/control",
            404,
            "task_not_found",
            json={"action": action},
        )
    answer = {"request_id": question["request_id"], "value": "low"}
    await _refused(client, attackers, "POST", f"{path}/input", 404, "task_not_found", json=answer)
    await _refused(client, attackers, "GET", f"/v1/runs/{task_id}", 404, "run_not_found")
    await _refused(client, attackers, "GET", f"/v1/runs/{task_id}/events", 404, "run_not_found")
    await _refused(
        client, attackers, "POST", f"/v1/runs/{task_id}/input", 404, "run_not_found", json=answer
    )
    await _refused(client, attackers, "POST", f"/v1/runs/{task_id}/cancel", 404, "run_not_found")
    for auth in attackers:
        assert task_id not in await _ids(client, auth, "/v1/tasks", "task_id")
        waiting = await _ids(client, auth, "/v1/tasks?status=input_required", "task_id")
        assert task_id not in waiting
        assert task_id not in await _ids(client, auth, "/v1/runs", "run_id")
    # A2A: the same task, through the agent's own JSON-RPC route.
    reply = {"role": "ROLE_USER", "messageId": uuid.uuid4().hex, "parts": [{"text": "low"}]}
    for method, params in (
        ("GetTask", {"id": task_id}),
        ("CancelTask", {"id": task_id}),
        ("SubscribeToTask", {"id": task_id}),
        ("SendMessage", {"message": {**reply, "taskId": task_id}}),
        ("CreateTaskPushNotificationConfig", {**hook, "id": "theirs"}),
        ("GetTaskPushNotificationConfig", {"taskId": task_id, "id": "hook-1"}),
        ("ListTaskPushNotificationConfigs", {"taskId": task_id}),
        ("DeleteTaskPushNotificationConfig", {"taskId": task_id, "id": "hook-1"}),
        # 0.3's names, which the dispatcher still serves.
        ("tasks/get", {"id": task_id}),
        ("tasks/cancel", {"id": task_id}),
        ("tasks/resubscribe", {"id": task_id}),
        ("message/send", {"message": {**V03_REPLY, "taskId": task_id}}),
        ("tasks/pushNotificationConfig/get", {"id": task_id}),
    ):
        await _a2a_refused(client, attackers, "approval", method, params)
    for auth in attackers:
        listed = await _rpc(client, auth, "approval", "ListTasks", {})
        assert task_id not in {t["id"] for t in listed["result"].get("tasks", [])}
    # MCP: the task id is ours, owned by the principal.
    for auth in attackers:
        async with _mcp(client, auth) as session:
            for call in (
                session.experimental.get_task(task_id),
                session.experimental.cancel_task(task_id),
                session.experimental.get_task_result(task_id, types.CallToolResult),
            ):
                with pytest.raises(McpError, match="task_not_found"):
                    await call
            listed_mcp = await session.experimental.list_tasks()
            assert task_id not in {t.taskId for t in listed_mcp.tasks}

    # Nothing changed: the task waits for the same answer, nothing paused, cancelled or logged.
    after = await _record(client, owner.user, path)
    for field in ("status", "pending_input", "pause_requested", "steps_taken", "error_code"):
        assert after[field] == before[field], field
    assert await _record(client, owner.user, f"{path}/steps") == steps
    kept = await _rpc(
        client, owner.user, "approval", "ListTaskPushNotificationConfigs", {"taskId": task_id}
    )
    assert [c["id"] for c in kept["result"]["configs"]] == ["hook-1"], kept

    # The owner, with the same id, on each surface.
    for read in TASK_READS[:-1]:
        status = 202 if read == "/result" else 200  # /result: not finished yet
        await _ok(client.get(f"{path}{read}", headers=owner.user), status)
    await _ok(client.get(f"/v1/runs/{task_id}", headers=owner.user))
    assert task_id in await _ids(client, owner.user, "/v1/tasks", "task_id")
    got = await _rpc(client, owner.user, "approval", "GetTask", {"id": task_id})
    assert got["result"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", got
    old_names = await _rpc(client, owner.user, "approval", "tasks/get", {"id": task_id})
    assert old_names["result"]["status"]["state"] == "input-required", old_names
    config = {"taskId": task_id, "id": "hook-1"}
    assert "result" in await _rpc(
        client, owner.user, "approval", "GetTaskPushNotificationConfig", config
    )
    assert "result" in await _rpc(
        client, owner.user, "approval", "DeleteTaskPushNotificationConfig", config
    )
    async with _mcp(client, owner.user) as session:
        assert (await session.experimental.get_task(task_id)).status == "input_required"
        assert task_id in {t.taskId for t in (await session.experimental.list_tasks()).tasks}
    await _ok(client.post(f"{path}/input", json=answer, headers=owner.user), 202)
    await _waiting(client, owner.user, path, not_id=question["request_id"])
    paused = await _ok(
        client.post(f"{path}/control", json={"action": "pause"}, headers=owner.user), 202
    )
    assert paused["pause_requested"] is True
    resumed = await _ok(
        client.post(f"{path}/control", json={"action": "resume"}, headers=owner.user), 202
    )
    assert resumed["pause_requested"] is False
    cancelled = await _rpc(client, owner.user, "approval", "CancelTask", {"id": task_id})
    assert cancelled["result"]["status"]["state"] == "TASK_STATE_CANCELED", cancelled
    async with _mcp(client, owner.user) as session:
        assert (await session.experimental.cancel_task(task_id)).status == "cancelled"
        ended = await session.experimental.get_task_result(task_id, types.CallToolResult)
        assert ended.isError
    assert (await _ok(client.delete(path, headers=owner.user), 202))["status"] == "cancelled"
    for url in (f"{path}/events", f"/v1/stream/tasks/{task_id}"):
        events = _sse(await client.get(url, headers=owner.user))
        assert events[-1][0] == "error" and events[-1][1]["code"] == "cancelled"


MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def _jsonrpc(method: str, params: dict[str, Any] | None = None, call: int | None = 1) -> Any:
    """A JSON-RPC request (``call``: its id), or a notification (``call=None``)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if call is not None:
        message["id"] = call
    return message


async def test_a_stateful_mcp_session_answers_only_the_principal_that_opened_it(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    """With sessions (MCP_STATELESS=false, the default) the Mcp-Session-Id is an id too:
    another tenant's principal using it is answered as if it did not exist (404), and
    cannot end it."""
    settings = _settings(request, make_settings, topology, MCP_STATELESS=False)
    async with app_client(settings) as client:
        acme, globex = await _tenants(client)
        opened = await client.post(
            "/mcp",
            json=_jsonrpc(
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "acme", "version": "1"},
                },
            ),
            headers={**acme.user, **MCP_HEADERS},
        )
        assert opened.status_code == 200, opened.text
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], **MCP_HEADERS}
        ready = await client.post(
            "/mcp",
            json=_jsonrpc("notifications/initialized", call=None),
            headers={**acme.user, **session},
        )
        assert ready.status_code == 202, ready.text
        for auth in (*globex.principals, acme.key):  # acme's own key is another principal too
            for method, message in (
                ("POST", _jsonrpc("tools/list")),
                ("POST", _jsonrpc("tasks/list")),
                ("DELETE", None),
            ):
                refused = await client.request(
                    method, "/mcp", json=message, headers={**auth, **session}
                )
                assert refused.status_code == 404, (method, refused.text)
        # The owner's session is still there, and answers it.
        listed = await client.post(
            "/mcp", json=_jsonrpc("tools/list"), headers={**acme.user, **session}
        )
        assert listed.status_code == 200, listed.text
        (frame,) = [data for _, data in _sse(listed)]
        assert "chat" in {tool["name"] for tool in frame["result"]["tools"]}
        ended = await client.delete("/mcp", headers={**acme.user, **session})
        assert ended.status_code == 200, ended.text


# -- WebSockets ------------------------------------------------------------------------------


@pytest.fixture
def socket_app(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> Iterator[TestClient]:
    settings = _settings(request, make_settings, topology)
    with TestClient(create_app(settings, services=build_services(settings))) as client:
        yield client


def _poll(client: TestClient, auth: Auth, path: str, done: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + 15
    while True:
        response = client.get(path, headers=auth)
        assert response.status_code == 200, response.text
        record = response.json()
        if done(record):
            return record
        assert time.monotonic() < deadline, f"timed out waiting on {path}: {record}"
        time.sleep(0.02)


def _frames_until(socket: Any, kind: str) -> list[dict[str, Any]]:
    """Frames read from ``socket`` up to and including the first of type ``kind``."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("type") != kind:
        frames.append(socket.receive_json())
    return frames


def test_websockets_refuse_another_tenants_tasks_and_sessions(socket_app: TestClient) -> None:
    client = socket_app
    acme, globex = _tenants_sync(client)
    for owner, other in _pairs(acme, globex):
        session = _created(client.post("/v1/sessions", json={"agent": "chat"}, headers=owner.user))
        sid = session["id"]
        invoked = client.post(
            "/v1/agents/chat/invoke",
            json={"input": _unique("Remember tea"), "session_id": sid},
            headers=owner.user,
        )
        assert invoked.status_code == 200, invoked.text
        history = client.get(f"/v1/sessions/{sid}/messages", headers=owner.user).json()
        submitted = client.post(
            "/v1/tasks",
            json={"agent": "approval", "input": _unique("Flush the CDN")},
            headers=owner.user,
        )
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["task_id"]
        path = f"/v1/tasks/{task_id}"
        before = _poll(client, owner.user, path, lambda t: _asking(t, steps=1))
        token = other.user["Authorization"].removeprefix("Bearer ")

        for auth, query in ((other.user, ""), (other.key, ""), ({}, f"?token={token}")):
            for url in (f"{path}/ws{query}", f"/v1/stream/tasks/{task_id}{query}"):
                with pytest.raises(WebSocketDisconnect) as refused:
                    with client.websocket_connect(url, headers=auth):
                        pass
                assert (refused.value.code, refused.value.reason) == (1008, "task_not_found"), url
        for auth in other.principals:
            with client.websocket_connect("/v1/agents/chat/ws", headers=auth) as socket:
                for if_busy in ("reject", "interrupt"):
                    start = {"type": "start", "input": "hi", "session_id": sid, "if_busy": if_busy}
                    socket.send_json(start)
                    frame = socket.receive_json()
                    assert (frame["type"], frame["code"]) == ("error", "session_not_found"), frame

        # Nothing changed.
        after = client.get(path, headers=owner.user).json()
        for field in ("status", "pending_input", "pause_requested", "steps_taken"):
            assert after[field] == before[field], field
        assert client.get(f"/v1/sessions/{sid}/messages", headers=owner.user).json() == history

        # The owner, with the same ids.
        with client.websocket_connect("/v1/agents/chat/ws", headers=owner.user) as socket:
            socket.send_json({"type": "start", "input": _unique("more"), "session_id": sid})
            frames = _frames_until(socket, "run_completed")
            assert frames[0]["type"] == "run_started" and frames[0]["session_id"] == sid
        with client.websocket_connect(f"/v1/stream/tasks/{task_id}", headers=owner.user) as socket:
            asked = _frames_until(socket, "input_required")[-1]
            assert asked["request_id"] == before["pending_input"]["request_id"]
        with client.websocket_connect(f"{path}/ws", headers=owner.user) as socket:
            asked = _frames_until(socket, "input_required")[-1]
            socket.send_json({"type": "input", "request_id": asked["request_id"], "value": "low"})
            seen = _frames_until(socket, "input_required")  # the next question, after the ack
            assert {"type": "ack", "action": "input"} in seen
            socket.send_json({"type": "cancel"})
            ended = _frames_until(socket, "error")
            assert {"type": "ack", "action": "cancel"} in ended and ended[-1]["code"] == "cancelled"
        assert client.get(path, headers=owner.user).json()["status"] == "cancelled"
        assert client.get(f"/v1/sessions/{sid}", headers=owner.user).json()["message_count"] == 4


# -- webhooks --------------------------------------------------------------------------------


@pytest.fixture
async def webhook_client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> AsyncIterator[AppClient]:
    settings = _settings(request, make_settings, topology, **WEBHOOKS_FAST)
    async with app_client(settings) as http:
        yield http


async def test_webhooks_of_another_tenant_are_not_found_and_hear_nothing_of_it(
    webhook_client: AppClient,
) -> None:
    client = webhook_client
    acme, globex = await _tenants(client)
    async with WebhookReceiver() as receiver:
        hooks: dict[str, dict[str, Any]] = {}
        runs: dict[str, str] = {}
        for tenant in (acme, globex):
            url = f"http://127.0.0.1:{receiver.port}/{tenant.id}"
            hooks[tenant.id] = _created(
                await client.post(
                    "/v1/webhooks",
                    json={"url": url, "events": ["run.completed"]},
                    headers=tenant.user,
                )
            )
        for tenant in (acme, globex):
            invoked = await _ok(
                client.post(
                    "/v1/agents/chat/invoke",
                    json={"input": _unique("Tell me about webhooks")},
                    headers=tenant.user,
                )
            )
            runs[tenant.id] = invoked["run_id"]

        def delivered(tenant: Tenant) -> Callable[[], Awaitable[dict[str, Any] | None]]:
            async def check() -> dict[str, Any] | None:
                path = f"/v1/webhooks/{hooks[tenant.id]['id']}/deliveries"
                log = await _record(client, tenant.user, path)
                done = [d for d in log["items"] if d["status"] == "delivered"]
                return done[0] if done else None

            return check

        deliveries = {t.id: await _until(delivered(t), "a delivery") for t in (acme, globex)}
        for owner, other in _pairs(acme, globex):
            hook_id = hooks[owner.id]["id"]
            delivery_id = deliveries[owner.id]["id"]
            own_hook = hooks[other.id]["id"]
            base = f"/v1/webhooks/{hook_id}"
            before = await _record(client, owner.user, f"{base}/deliveries")
            attackers = other.principals
            await _refused(client, attackers, "GET", base, 404, "webhook_not_found")
            await _refused(client, attackers, "GET", f"{base}/deliveries", 404, "webhook_not_found")
            await _refused(
                client,
                attackers,
                "POST",
                f"{base}/deliveries/{delivery_id}/retry",
                404,
                "webhook_not_found",
            )
            # Its own subscription with the owner's delivery id: that delivery is not in its log.
            await _refused(
                client,
                (other.user,),
                "POST",
                f"/v1/webhooks/{own_hook}/deliveries/{delivery_id}/retry",
                404,
                "webhook_delivery_not_found",
            )
            await _refused(client, attackers, "DELETE", base, 404, "webhook_not_found")
            for auth in attackers:
                assert hook_id not in await _ids(client, auth, "/v1/webhooks", "id")
            # Unchanged: the subscription, its log; each tenant heard of its own run only.
            assert (await _record(client, owner.user, base))["id"] == hook_id
            assert await _record(client, owner.user, f"{base}/deliveries") == before
            assert [d["run_id"] for d in before["items"]] == [runs[owner.id]]
            heard = [
                got.json()["data"]["run_id"]
                for _, got in receiver.attempts
                if got.path == f"/{owner.id}"
            ]
            assert heard == [runs[owner.id]]
        # The owners, with the same ids (once both directions were tried).
        for owner in (acme, globex):
            hook_id = hooks[owner.id]["id"]
            delivery_id = deliveries[owner.id]["id"]
            base = f"/v1/webhooks/{hook_id}"
            assert hook_id in await _ids(client, owner.user, "/v1/webhooks", "id")
            retried = await _ok(
                client.post(f"{base}/deliveries/{delivery_id}/retry", headers=owner.user), 202
            )
            assert retried["id"] == delivery_id
            await _ok(client.delete(base, headers=owner.user), 204)
            await _refused(client, (owner.user,), "GET", base, 404, "webhook_not_found")


# -- usage -----------------------------------------------------------------------------------


async def test_usage_of_another_tenant_cannot_be_read(client: AppClient) -> None:
    acme, globex = await _tenants(client)
    admin = await _admin(client)
    callers = [admin, *acme.principals, *globex.principals]
    for auth in callers:
        await _ok(
            client.post("/v1/agents/chat/invoke", json={"input": _unique("Count me")}, headers=auth)
        )

    async def everyone() -> dict[str, Any] | None:
        report = await _record(client, admin, "/v1/usage?principal=*&group_by=principal")
        return report if len(report["items"]) == len(callers) else None

    await _until(everyone, "every caller's usage in the ledger")
    for owner, other in _pairs(acme, globex):
        for victim in (owner.user_id, owner.key_id, "user:admin"):
            await _refused(
                client,
                other.principals,
                "GET",
                "/v1/usage",
                403,
                "insufficient_scope",
                params={"principal": victim},
            )
        for auth, me in ((other.user, other.user_id), (other.key, other.key_id)):
            # `*` for a tenant:admin: its own tenant's principals, no one else's.
            report = await _record(client, auth, "/v1/usage?principal=*&group_by=principal")
            assert {i["principal"] for i in report["items"]} == {other.user_id, other.key_id}
            own = await _record(client, auth, "/v1/usage?group_by=principal")
            assert [i["principal"] for i in own["items"]] == [me]
            assert (await _record(client, auth, "/v1/usage/budget"))["principal"] == me
        # The owner (a tenant:admin) reads its own tenant's principals.
        for victim in (owner.user_id, owner.key_id):
            report = await _record(
                client, owner.user, f"/v1/usage?principal={victim}&group_by=principal"
            )
            assert [i["principal"] for i in report["items"]] == [victim]


# -- tenant administration -----------------------------------------------------------------


async def test_a_tenant_admin_cannot_see_or_manage_another_tenant(client: AppClient) -> None:
    acme, globex = await _tenants(client)
    admin = await _admin(client)
    for owner, other in _pairs(acme, globex):
        await _admin_isolation(client, admin, owner, other)
    for tenant in (acme, globex):
        await _no_way_to_admin(client, tenant)
    await _same_name_in_two_tenants(client, acme, globex)


async def _admin_isolation(client: AppClient, admin: Auth, owner: Tenant, other: Tenant) -> None:
    # A user only the owner's tenant has, and a spare API key of the owner's tenant.
    only = f"only-{owner.id}"
    body = {"username": only, "password": PASSWORD, "scopes": ["agents:run"]}
    _created(await client.post("/v1/auth/users", json=body, headers=owner.user))
    only_token = await login(client, PASSWORD, f"{owner.id}/{only}")
    spare = _created(
        await client.post(
            "/v1/auth/api-keys",
            json={"name": "spare", "scopes": ["agents:run"]},
            headers=owner.user,
        )
    )
    users_before = await _record(client, admin, f"/v1/auth/users?tenant_id={owner.id}")
    keys_before = await _record(client, admin, f"/v1/auth/api-keys?tenant_id={owner.id}")
    tenant_before = await _record(client, admin, f"/v1/tenants/{owner.id}")
    attackers = other.principals
    in_owner = {"tenant_id": owner.id}
    new_password = {"password": "another-password-456"}

    for name in (USER, only):
        user = f"/v1/auth/users/{name}"
        for method, path, payload in (
            ("GET", user, None),
            ("PATCH", user, {"scopes": ["agents:run"]}),
            ("POST", f"{user}/disable", None),
            ("POST", f"{user}/enable", None),
            ("PUT", f"{user}/password", new_password),
            ("POST", f"{user}/revoke-tokens", None),
            ("DELETE", user, None),
        ):
            await _refused(
                client,
                attackers,
                method,
                path,
                404,
                "tenant_not_found",
                params=in_owner,
                json=payload,
            )
            if name == only:  # without tenant_id: its own tenant, where there is no such user
                await _refused(client, attackers, method, path, 404, "user_not_found", json=payload)
    await _refused(
        client, attackers, "GET", "/v1/auth/users", 404, "tenant_not_found", params=in_owner
    )
    await _refused(
        client, attackers, "GET", "/v1/auth/api-keys", 404, "tenant_not_found", params=in_owner
    )
    intruder = {"username": "mole", "password": PASSWORD, "scopes": SCOPES, **in_owner}
    await _refused(
        client, attackers, "POST", "/v1/auth/users", 404, "tenant_not_found", json=intruder
    )
    key_body = {"name": "mole", "scopes": SCOPES, **in_owner}
    await _refused(
        client, attackers, "POST", "/v1/auth/api-keys", 404, "tenant_not_found", json=key_body
    )
    for key in (owner.key_record, spare["id"]):
        await _refused(client, attackers, "DELETE", f"/v1/auth/api-keys/{key}", 404, "not_found")
    await _refused(client, attackers, "GET", f"/v1/tenants/{owner.id}", 404, "tenant_not_found")
    rename = {"name": "Taken over", "policy": {"allowed_agents": []}}
    await _refused(
        client,
        attackers,
        "PATCH",
        f"/v1/tenants/{owner.id}",
        403,
        "insufficient_scope",
        json=rename,
    )
    await _refused(
        client, attackers, "DELETE", f"/v1/tenants/{owner.id}", 403, "insufficient_scope"
    )
    await _refused(client, attackers, "GET", "/v1/tenants", 403, "insufficient_scope")
    for auth in attackers:
        users = await _record(client, auth, "/v1/auth/users")
        assert {u["tenant"] for u in users["items"]} == {other.id}, users
        keys = await _record(client, auth, "/v1/auth/api-keys")
        assert {k["tenant"] for k in keys["items"]} == {other.id}, keys
        assert not {owner.key_record, spare["id"]} & {k["id"] for k in keys["items"]}

    # Nothing changed: same users, keys and tenant; every credential still works.
    assert await _record(client, admin, f"/v1/auth/users?tenant_id={owner.id}") == users_before
    assert await _record(client, admin, f"/v1/auth/api-keys?tenant_id={owner.id}") == keys_before
    assert await _record(client, admin, f"/v1/tenants/{owner.id}") == tenant_before
    for auth in (*owner.principals, _bearer(only_token), {"X-API-Key": spare["key"]}):
        assert (await _record(client, auth, "/v1/auth/me"))["tenant"] == owner.id
    await login(client, PASSWORD, f"{owner.id}/{only}")
    assert "mole" not in {u["username"] for u in users_before["items"]}

    # The owner's tenant admin, with the same names and ids (its tenant named or not).
    assert (await _record(client, owner.user, f"/v1/tenants/{owner.id}"))["id"] == owner.id
    listed = await _record(client, owner.user, f"/v1/auth/users?tenant_id={owner.id}")
    assert listed == users_before
    assert spare["id"] in await _ids(client, owner.key, "/v1/auth/api-keys", "id")
    user = f"/v1/auth/users/{only}"
    for method, path, payload in (
        ("GET", user, None),
        ("PATCH", user, {"scopes": ["agents:run", "sessions:read"]}),
        ("POST", f"{user}/disable", None),
        ("POST", f"{user}/enable", None),
        ("PUT", f"{user}/password", new_password),
        ("POST", f"{user}/revoke-tokens", None),
    ):
        response = await client.request(
            method, path, params=in_owner, json=payload, headers=owner.key
        )
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        assert response.json()["username"] == f"{owner.id}/{only}"
    await _ok(client.delete(user, headers=owner.user), 204)
    await _ok(client.delete(f"/v1/auth/api-keys/{spare['id']}", headers=owner.user))
    response = await client.get("/v1/auth/me", headers={"X-API-Key": spare["key"]})
    assert response.status_code == 401


async def _no_way_to_admin(client: AppClient, tenant: Tenant) -> None:
    """`admin` reaches every tenant: a tenant admin can give it to no principal of its own."""
    wanted = ["admin", "agents:run"]
    for auth in tenant.principals:
        user = {"username": "root", "password": PASSWORD, "scopes": wanted}
        await _refused(
            client, (auth,), "POST", "/v1/auth/users", 422, "scope_not_allowed", json=user
        )
        key = {"name": "root", "scopes": wanted}
        await _refused(
            client, (auth,), "POST", "/v1/auth/api-keys", 422, "scope_not_allowed", json=key
        )
        await _refused(
            client,
            (auth,),
            "PATCH",
            f"/v1/auth/users/{USER}",
            422,
            "scope_not_allowed",
            json={"scopes": wanted},
        )
        await _refused(client, (auth,), "GET", "/v1/tenants", 403, "insufficient_scope")
    await _refused(client, (tenant.key,), "GET", "/v1/auth/users/root", 404, "user_not_found")
    me = await _record(client, tenant.user, "/v1/auth/me")
    assert sorted(me["scopes"]) == sorted(SCOPES)


async def _same_name_in_two_tenants(client: AppClient, acme: Tenant, globex: Tenant) -> None:
    """Both tenants have a user `ann`: what acme's admin does to acme's ann (revoke its
    tokens, set its password, disable it, delete it and so revoke the keys it made) leaves
    globex's ann, its tokens and the keys it made, working."""
    made: dict[str, Auth] = {}
    for tenant in (acme, globex):
        key = _created(
            await client.post(
                "/v1/auth/api-keys",
                json={"name": "made by ann", "scopes": ["agents:run"]},
                headers=tenant.user,
            )
        )
        made[tenant.id] = {"X-API-Key": key["key"]}
    ann = f"/v1/auth/users/{USER}"

    async def globex_unharmed() -> None:
        for auth in (globex.user, made["globex"]):
            assert (await _record(client, auth, "/v1/auth/me"))["tenant"] == "globex"
        info = await _record(client, globex.key, ann)
        assert info["username"] == f"globex/{USER}" and info["disabled"] is False

    await _ok(client.post(f"{ann}/revoke-tokens", headers=acme.key))
    assert_problem(await client.get("/v1/auth/me", headers=acme.user), 401, "token_revoked")
    await globex_unharmed()
    await _ok(
        client.put(f"{ann}/password", json={"password": "changed-password-789"}, headers=acme.key)
    )
    await login(client, PASSWORD, f"globex/{USER}")  # globex's ann keeps its password
    await globex_unharmed()
    await _ok(client.post(f"{ann}/disable", headers=acme.key))
    assert_problem(await client.get("/v1/auth/me", headers=made["acme"]), 401, "api_key_revoked")
    await globex_unharmed()
    await _ok(client.delete(ann, headers=acme.key), 204)
    await _refused(client, (acme.key,), "GET", ann, 404, "user_not_found")
    await globex_unharmed()
    await login(client, PASSWORD, f"globex/{USER}")


# -- a default-tenant user named like a tenant --------------------------------------------


async def test_a_tenants_subscription_hears_every_principal_of_it_and_no_other_tenant(
    webhook_client: AppClient,
) -> None:
    """`scope: tenant` (a tenant admin's): told of the runs of every principal of its tenant,
    managed by any of its tenant admins, invisible to everyone else."""
    client = webhook_client
    acme, globex = await _tenants(client)
    admin = await _admin(client)
    plain_body = {"username": "plain", "password": PASSWORD, "scopes": ["agents:run", "webhooks"]}
    _created(
        await client.post("/v1/auth/users", json={**plain_body, "tenant_id": "acme"}, headers=admin)
    )
    plain = _bearer(await login(client, PASSWORD, "acme/plain"))
    async with WebhookReceiver() as receiver:
        hooks: dict[str, str] = {}
        for tenant in (acme, globex):
            made = _created(
                await client.post(
                    "/v1/webhooks",
                    json={
                        "url": f"http://127.0.0.1:{receiver.port}/{tenant.id}",
                        "events": ["run.completed"],
                        "scope": "tenant",
                    },
                    headers=tenant.user,
                )
            )
            assert made["scope"] == "tenant"
            hooks[tenant.id] = made["id"]
        # Only a tenant admin makes or sees one.
        refused = await client.post(
            "/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{receiver.port}/x",
                "events": ["run.completed"],
                "scope": "tenant",
            },
            headers=plain,
        )
        assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
        await _refused(
            client, (plain,), "GET", f"/v1/webhooks/{hooks['acme']}", 404, "webhook_not_found"
        )
        # Another tenant admin of acme (its key) manages it; globex's principals cannot.
        listed = await _record(client, acme.key, "/v1/webhooks")
        assert [h["id"] for h in listed["items"]] == [hooks["acme"]]
        for auth in globex.principals:
            await _refused(
                client, (auth,), "GET", f"/v1/webhooks/{hooks['acme']}", 404, "webhook_not_found"
            )
        # Runs of three acme principals (its maker among them) and one of globex.
        runs: dict[str, set[str]] = {"acme": set(), "globex": set()}
        for name, auth in (
            ("acme", acme.key),
            ("acme", plain),
            ("acme", acme.user),
            ("globex", globex.key),
        ):
            invoked = await _ok(
                client.post(
                    "/v1/agents/chat/invoke", json={"input": _unique("hear me")}, headers=auth
                )
            )
            runs[name].add(invoked["run_id"])

        def heard(tenant: Tenant) -> Callable[[], Awaitable[set[str] | None]]:
            async def check() -> set[str] | None:
                path = f"/v1/webhooks/{hooks[tenant.id]}/deliveries"
                log = await _record(client, tenant.key, path)
                done = {d["run_id"] for d in log["items"] if d["status"] == "delivered"}
                return done if done >= runs[tenant.id] else None

            return check

        for tenant in (acme, globex):
            assert await _until(heard(tenant), "the tenant's deliveries") == runs[tenant.id]
        by_path: dict[str, set[str]] = {"/acme": set(), "/globex": set()}
        for _, got in receiver.attempts:
            by_path[got.path].add(got.json()["data"]["run_id"])
        assert by_path == {"/acme": runs["acme"], "/globex": runs["globex"]}


async def test_a_default_user_named_like_a_tenant_is_not_of_it(webhook_client: AppClient) -> None:
    """`user:acme` (the default tenant's user `acme`) and `user:acme/ann` (tenant acme's) share
    a prefix: neither sees the other's things, usage, users or tenant."""
    client = webhook_client
    acme, _ = await _tenants(client)
    admin = await _admin(client)
    body = {"username": "acme", "password": PASSWORD, "scopes": SCOPES}
    _created(await client.post("/v1/auth/users", json=body, headers=admin))
    namesake = _bearer(await login(client, PASSWORD, "acme"))
    me = await _record(client, namesake, "/v1/auth/me")
    assert (me["id"], me["tenant"]) == ("user:acme", "default")
    things: dict[str, dict[str, str]] = {}
    for who, auth in (("namesake", namesake), ("acme", acme.user)):
        session = _created(await client.post("/v1/sessions", json={"agent": "chat"}, headers=auth))
        run = await _ok(
            client.post(
                "/v1/agents/chat/invoke",
                json={"input": _unique("hello"), "session_id": session["id"]},
                headers=auth,
            )
        )
        task = await _ok(
            client.post("/v1/tasks", json={"agent": "chat", "input": "hi"}, headers=auth), 202
        )
        hook = _created(
            await client.post(
                "/v1/webhooks",
                json={"url": "http://127.0.0.1:9/hook", "events": ["run.completed"]},
                headers=auth,
            )
        )
        things[who] = {
            "session": session["id"],
            "run": run["run_id"],
            "task": task["task_id"],
            "hook": hook["id"],
        }
    for owner, attacker in (("namesake", acme.user), ("acme", namesake)):
        mine = things[owner]
        await _refused(
            client, (attacker,), "GET", f"/v1/sessions/{mine['session']}", 404, "session_not_found"
        )
        await _refused(client, (attacker,), "GET", f"/v1/runs/{mine['run']}", 404, "run_not_found")
        await _refused(
            client, (attacker,), "GET", f"/v1/tasks/{mine['task']}", 404, "task_not_found"
        )
        await _refused(
            client, (attacker,), "GET", f"/v1/webhooks/{mine['hook']}", 404, "webhook_not_found"
        )
        for path, field in (
            ("/v1/sessions", "id"),
            ("/v1/runs", "run_id"),
            ("/v1/tasks", "task_id"),
            ("/v1/webhooks", "id"),
        ):
            assert not await _ids(client, attacker, path, field) & set(mine.values()), path
    # Usage: acme's tenant admin may read its tenant's principals, not the namesake.
    for auth, victim in ((acme.user, "user:acme"), (namesake, acme.user_id), (namesake, "*")):
        await _refused(
            client,
            (auth,),
            "GET",
            "/v1/usage",
            403,
            "insufficient_scope",
            params={"principal": victim},
        )
    # The namesake holds tenant:admin in the default tenant: that manages nothing, acme least.
    await _refused(client, (namesake,), "GET", "/v1/auth/users", 403, "insufficient_scope")
    await _refused(
        client,
        (namesake,),
        "GET",
        "/v1/auth/users",
        403,
        "insufficient_scope",
        params={"tenant_id": "acme"},
    )
    await _refused(client, (namesake,), "GET", "/v1/tenants/acme", 404, "tenant_not_found")
    # Each reads its own.
    for owner, auth in (("namesake", namesake), ("acme", acme.user)):
        assert (await _record(client, auth, f"/v1/sessions/{things[owner]['session']}"))["id"]
        assert things[owner]["task"] in await _ids(client, auth, "/v1/tasks", "task_id")


# -- a tenant deleted, and its id used again ------------------------------------------------


async def test_a_deleted_tenant_leaves_the_other_alone_and_its_id_is_never_reused(
    webhook_client: AppClient,
) -> None:
    """Deleting acme refuses its credentials and touches nothing of globex's. Its id is
    retired: a tenant made later with the id `acme` would own what the deleted tenant's `ann`
    left behind (principal ids are made of tenant and name), so it is never made again."""
    client = webhook_client
    acme, globex = await _tenants(client)
    admin = await _admin(client)
    left: dict[str, dict[str, str]] = {}
    for tenant in (acme, globex):
        session = _created(
            await client.post("/v1/sessions", json={"agent": "chat"}, headers=tenant.user)
        )
        run = await _ok(
            client.post(
                "/v1/agents/chat/invoke",
                json={"input": f"{tenant.id}'s secret is 42", "session_id": session["id"]},
                headers=tenant.user,
            )
        )
        task = await _ok(
            client.post("/v1/tasks", json={"agent": "chat", "input": "hi"}, headers=tenant.user),
            202,
        )
        await _finished(client, tenant.user, f"/v1/tasks/{task['task_id']}")
        hook = _created(
            await client.post(
                "/v1/webhooks",
                json={"url": "http://127.0.0.1:9/hook", "events": ["task.completed"]},
                headers=tenant.user,
            )
        )
        left[tenant.id] = {
            "session": session["id"],
            "run": run["run_id"],
            "task": task["task_id"],
            "hook": hook["id"],
        }
    globex_history = await _record(
        client, globex.user, f"/v1/sessions/{left['globex']['session']}/messages"
    )

    async def recorded() -> bool:
        usage = await _record(client, acme.user, "/v1/usage")
        return bool(usage["total"]["calls"] >= 2)

    await _until(recorded, "acme's usage in the ledger")

    await _ok(client.delete("/v1/tenants/acme", headers=admin), 204)
    # Its user was deleted and its key revoked, at once.
    await _refused(client, (acme.user,), "GET", "/v1/auth/me", 401, "token_revoked")
    await _refused(client, (acme.key,), "GET", "/v1/auth/me", 401, "api_key_invalid")
    # globex: untouched.
    for auth in globex.principals:
        assert (await _record(client, auth, "/v1/auth/me"))["tenant"] == "globex"
    mine = left["globex"]
    assert (
        await _record(client, globex.user, f"/v1/sessions/{mine['session']}/messages")
        == globex_history
    )
    assert (await _record(client, globex.user, f"/v1/runs/{mine['run']}"))["status"] == "completed"
    assert (await _record(client, globex.user, f"/v1/tasks/{mine['task']}"))["status"] == (
        "completed"
    )
    assert (await _record(client, globex.user, f"/v1/webhooks/{mine['hook']}"))["id"] == mine[
        "hook"
    ]
    await login(client, PASSWORD, f"globex/{USER}")
    assert (await _record(client, admin, "/v1/tenants/globex"))["id"] == "globex"

    # The id is retired: no other customer can be made `acme`, so nobody can become a
    # principal that owns what the deleted tenant's `ann` left (its session, runs, task,
    # webhook subscription and usage stay unreachable).
    again = await client.post("/v1/tenants", json={"id": "acme", "name": "New Acme"}, headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "tenant_id_retired"
    body = {
        "username": USER,
        "password": "new-acme-password",
        "scopes": SCOPES,
        "tenant_id": "acme",
    }
    for path, payload in (
        ("/v1/auth/users", body),
        ("/v1/auth/api-keys", {"name": "again", "scopes": SCOPES, "tenant_id": "acme"}),
    ):
        refused = await client.post(path, json=payload, headers=admin)
        assert refused.status_code == 404 and refused.json()["code"] == "tenant_not_found"
    relogin = await client.post(
        "/v1/auth/token", data={"username": f"acme/{USER}", "password": PASSWORD}
    )
    assert relogin.status_code == 401
    # What it left is still there for nobody: globex's principals cannot reach it either.
    old = left["acme"]
    for auth in globex.principals:
        for path, code in (
            (f"/v1/sessions/{old['session']}", "session_not_found"),
            (f"/v1/runs/{old['run']}", "run_not_found"),
            (f"/v1/tasks/{old['task']}", "task_not_found"),
            (f"/v1/webhooks/{old['hook']}", "webhook_not_found"),
        ):
            await _refused(client, (auth,), "GET", path, 404, code)


# -- external identities (OIDC) -------------------------------------------------------------


async def test_one_oidc_subject_in_two_tenants_is_two_principals(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    """An IdP's `org` claim names the tenant: its subject `ann` in acme and in globex is two
    principals (neither is acme's password user `ann`), each blind to the other's things."""
    with FakeIdP(audience="agent-service") as idp:
        idp.add_key("RS256")
        provider = {
            "issuer": idp.issuer,
            "audience": "agent-service",
            "alias": "corp",
            "tenant_claim": "org",
        }
        settings = _settings(
            request, make_settings, topology, OIDC_PROVIDERS=json.dumps([provider])
        )
        async with app_client(settings) as client:
            acme, globex = await _tenants(client)
            scope = " ".join(SCOPES)
            oidc = {t: _bearer(idp.token(sub=USER, org=t, scope=scope)) for t in TENANTS}
            ids = {t: (await _record(client, oidc[t], "/v1/auth/me"))["id"] for t in TENANTS}
            assert ids == {t: f"oidc:corp@{t}:{USER}" for t in TENANTS}
            sessions = {}
            for tenant in TENANTS:
                made = await client.post(
                    "/v1/sessions", json={"agent": "chat"}, headers=oidc[tenant]
                )
                sessions[tenant] = _created(made)["id"]
            for owner, other in (("acme", "globex"), ("globex", "acme")):
                sid = sessions[owner]
                attackers = (oidc[other], acme.user if other == "acme" else globex.user)
                await _refused(
                    client, attackers, "GET", f"/v1/sessions/{sid}", 404, "session_not_found"
                )
                # Nor is it the same tenant's password user of the same name.
                same_tenant_user = acme.user if owner == "acme" else globex.user
                await _refused(
                    client,
                    (same_tenant_user,),
                    "GET",
                    f"/v1/sessions/{sid}",
                    404,
                    "session_not_found",
                )
                await _refused(
                    client,
                    (oidc[other],),
                    "GET",
                    "/v1/usage",
                    403,
                    "insufficient_scope",
                    params={"principal": ids[owner]},
                )
                await _refused(
                    client,
                    (oidc[other],),
                    "GET",
                    "/v1/auth/users",
                    404,
                    "tenant_not_found",
                    params={"tenant_id": owner},
                )
                assert (await _record(client, oidc[owner], f"/v1/sessions/{sid}"))["id"] == sid
                users = await _record(client, oidc[owner], "/v1/auth/users")
                assert {u["tenant"] for u in users["items"]} == {owner}


# -- the LLM cache -----------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "tenant"])
async def test_the_llm_cache_never_answers_another_tenant(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str, scope: str
) -> None:
    # A slow model: identical calls made at once overlap, and share one upstream call
    # (single flight) exactly when they may share a cache entry.
    settings = _settings(
        request, make_settings, topology, CACHE_SCOPE=scope, OFFLINE_LATENCY_MS=150
    )
    async with app_client(settings) as client:
        acme, globex = await _tenants(client)
        admin = await _admin(client)

        async def invoke(auth: Auth, prompt: str) -> tuple[str, str]:
            body = await client.post("/v1/agents/chat/invoke", json={"input": prompt}, headers=auth)
            assert body.status_code == 200, body.text
            return body.headers["x-cache"], body.json()["output"]

        # In turn: the first caller of each tenant misses, whatever another tenant asked
        # before; the second caller of a tenant hits its tenant's entry (the cache is on).
        prompt = _unique("What is the capital of France?")
        for tenant, auths in (
            ("acme", acme.principals),
            ("globex", globex.principals),
            ("default", (admin,)),
        ):
            status, output = await invoke(auths[0], prompt)
            assert status == "MISS", (scope, tenant)
            if len(auths) > 1:
                again, cached = await invoke(auths[1], prompt)
                assert (again, cached) == ("HIT", output), (scope, tenant)
        for auth in (*acme.principals, *globex.principals, admin):
            assert (await invoke(auth, prompt))[0] == "HIT"

        # At once: one caller per tenant, each misses (no flight is shared across tenants)...
        prompt = _unique("What is the capital of Italy?")
        callers = (acme.user, globex.user, admin)
        at_once = await asyncio.gather(*(invoke(auth, prompt) for auth in callers))
        assert [status for status, _ in at_once] == ["MISS"] * len(callers), (scope, at_once)
        # ...while two callers of one tenant share one call.
        prompt = _unique("What is the capital of Spain?")
        shared = await asyncio.gather(*(invoke(auth, prompt) for auth in acme.principals))
        assert sorted(status for status, _ in shared) == ["HIT", "MISS"], (scope, shared)


# -- idempotency keys and rate-limit buckets --------------------------------------------------


async def test_an_idempotency_key_replays_only_within_its_principal(client: AppClient) -> None:
    acme, globex = await _tenants(client)
    headers = {"Idempotency-Key": "same-key-everywhere"}
    body = {"agent": "chat", "input": "the same body"}
    first: dict[str, str] = {}
    for tenant in (acme, globex):
        response = await client.post("/v1/tasks", json=body, headers={**tenant.user, **headers})
        assert response.status_code == 202, response.text
        assert "idempotent-replayed" not in response.headers
        first[tenant.id] = response.json()["task_id"]
    assert first["acme"] != first["globex"]
    for owner, other in _pairs(acme, globex):
        again = await client.post("/v1/tasks", json=body, headers={**owner.user, **headers})
        assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["task_id"] == first[owner.id]
        path = f"/v1/tasks/{first[owner.id]}"
        await _refused(client, other.principals, "GET", path, 404, "task_not_found")
        assert (await _record(client, owner.user, path))["task_id"] == first[owner.id]


async def test_rate_limit_buckets_are_per_tenant_principal(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    settings = _settings(request, make_settings, topology, RATE_LIMIT_ENABLED=True)
    async with app_client(settings) as client:
        acme, globex = await _tenants(client, rate_limit="3/minute")
        # acme's ann spends its bucket; globex's ann, the same name in another tenant, and
        # acme's own API key each have a bucket of their own.
        for auth in (acme.user, globex.user, acme.key):
            for _ in range(3):
                assert (await client.get("/v1/agents", headers=auth)).status_code == 200
            assert_problem(await client.get("/v1/agents", headers=auth), 429, "rate_limited")

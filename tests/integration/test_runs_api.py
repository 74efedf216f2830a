"""GET /v1/runs, /v1/runs/{id}: every run has a record its owner can read, in-process against
both store backends (memory, and a private redis-server or Redis Cluster).

The WebSocket tests drive the app with Starlette's TestClient (httpx's ASGITransport cannot
upgrade); the stream route is driven concurrently with the polls that watch its record.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from app.main import create_app
from app.services import build_services
from tests.conftest import (
    ADMIN_PASSWORD,
    REDIS_TOPOLOGIES,
    AppClient,
    SettingsFactory,
    app_client,
    login,
    redis_url_for,
)
from tests.integration.test_auth_api import assert_problem
from tests.support.sse import parse_lines

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Auth = dict[str, str]
LIVE = frozenset({"running", "input_required"})


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
async def any_client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> AsyncIterator[AppClient]:
    """Both store backends (Redis: single and cluster), without rate limits: these tests
    poll records."""
    overrides: dict[str, Any] = {"RATE_LIMIT_ENABLED": False}
    if request.param != "memory":
        overrides["REDIS_URL"] = redis_url_for(request, str(request.param))
    async with app_client(make_settings(**overrides)) as http:
        yield http


async def _admin(client: httpx.AsyncClient) -> Auth:
    return {"Authorization": f"Bearer {await login(client)}"}


async def _other_caller(client: httpx.AsyncClient, admin: Auth) -> Auth:
    """Another principal with the same scope: an API key is a principal of its own."""
    response = await client.post(
        "/v1/auth/api-keys", json={"name": "other", "scopes": ["agents:run"]}, headers=admin
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"  # no LLM cache hit across tests


async def _invoke(client: httpx.AsyncClient, auth: Auth, **body: Any) -> dict[str, Any]:
    agent = body.pop("agent", "chat")
    response = await client.post(f"/v1/agents/{agent}/invoke", json=body, headers=auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _run(client: httpx.AsyncClient, auth: Auth, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/runs/{run_id}", headers=auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _until(
    probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str, timeout: float = 10
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what} never happened; last seen: {value}"
        await asyncio.sleep(0.02)


async def test_an_invoked_run_has_a_record(any_client: AppClient) -> None:
    auth = await _admin(any_client)
    answer = await _invoke(any_client, auth, input=_unique("Tell me about records"))
    run = await _run(any_client, auth, answer["run_id"])
    assert run["run_id"] == answer["run_id"] and run["kind"] == "run"
    assert run["agent"] == "chat" and run["status"] == "completed"
    assert run["session_id"] == answer["session_id"] is not None
    assert run["input"].startswith("Tell me about records")
    assert run["output"] == answer["output"]
    assert run["usage"] == answer["usage"] and run["usage"]["completion_tokens"] > 0
    assert run["execution_time"] == answer["execution_time"]
    assert run["cached"] is False and run["steps_taken"] == 1
    assert run["error_code"] is None and run["pending_input"] is None
    assert run["started_at"] <= run["finished_at"]
    # A foreground run is a run, not a task.
    assert_problem(
        await any_client.get(f"/v1/tasks/{answer['run_id']}", headers=auth), 404, "task_not_found"
    )


async def test_list_filters_by_session_and_status_for_the_owner_only(
    any_client: AppClient,
) -> None:
    auth = await _admin(any_client)
    first = await _invoke(any_client, auth, input=_unique("One"))
    session = first["session_id"]
    second = await _invoke(any_client, auth, input=_unique("Two"), session_id=session)
    elsewhere = await _invoke(any_client, auth, input=_unique("Three"))
    # An agent that asks for input cannot be invoked: that run ends cancelled.
    refused = await any_client.post(
        "/v1/agents/approval/invoke", json={"input": _unique("Deploy")}, headers=auth
    )
    assert_problem(refused, 409, "input_required_unsupported")

    async def listed(query: str, headers: Auth = auth) -> dict[str, Any]:
        response = await any_client.get(f"/v1/runs{query}", headers=headers)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    # The 409 may come before the refused run has recorded its end.
    cancelled = await _until(lambda: listed("?status=cancelled"), _one, "the refused run's end")
    assert cancelled["items"][0]["agent"] == "approval"
    assert cancelled["items"][0]["status"] == "cancelled"
    everything = await listed("")
    assert everything["total"] == 4 and len(everything["items"]) == 4
    assert everything["items"][1]["run_id"] == elsewhere["run_id"]  # newest first
    of_session = await listed(f"?session_id={session}")
    assert [r["run_id"] for r in of_session["items"]] == [second["run_id"], first["run_id"]]
    assert of_session["total"] == 2
    both = await listed(f"?status=completed&session_id={elsewhere['session_id']}")
    assert [r["run_id"] for r in both["items"]] == [elsewhere["run_id"]]
    assert (await listed(f"?status=cancelled&session_id={session}"))["total"] == 0
    page = await listed("?limit=1&offset=1")
    assert [r["run_id"] for r in page["items"]] == [elsewhere["run_id"]] and page["total"] == 4

    other = await _other_caller(any_client, auth)
    assert await listed("", other) == {"items": [], "total": 0, "limit": 20, "offset": 0}
    assert (await listed(f"?session_id={session}", other))["items"] == []
    for path in (f"/v1/runs/{first['run_id']}", f"/v1/runs/{first['run_id']}/events"):
        assert_problem(await any_client.get(path, headers=other), 404, "run_not_found")


def _one(page: dict[str, Any]) -> bool:
    return bool(page["total"] == 1)


async def test_an_invoke_refused_for_human_input_records_why(any_client: AppClient) -> None:
    auth = await _admin(any_client)
    refused = await any_client.post(
        "/v1/agents/approval/invoke", json={"input": _unique("Drop the cache")}, headers=auth
    )
    assert_problem(refused, 409, "input_required_unsupported")

    async def cancelled() -> dict[str, Any]:
        page: dict[str, Any] = (
            await any_client.get("/v1/runs?status=cancelled", headers=auth)
        ).json()
        return page

    (run,) = (await _until(cancelled, _one, "the refused run's end"))["items"]
    assert run["pending_input"] is None and run["output"] is None
    # The server stopped the run because the agent asked for input; the caller never left.
    assert run["error_code"] == "input_required", run


async def test_a_malformed_or_unknown_run_id_is_not_found(any_client: AppClient) -> None:
    auth = await _admin(any_client)
    for run_id in ("not-a-run", "0" * 32, "A" * 32, "0" * 31):
        for path in (f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/events"):
            assert_problem(await any_client.get(path, headers=auth), 404, "run_not_found")
    # Session ids may be chosen by clients (AG-UI threads), but only from [A-Za-z0-9_-]{1,64}.
    for bad in ("no%20pe", "x" * 65, "a.b"):
        bad_filter = await any_client.get(f"/v1/runs?session_id={bad}", headers=auth)
        assert_problem(bad_filter, 422, "validation_error")


async def test_a_streamed_run_waiting_for_input_shows_it_on_its_record(
    any_client: AppClient,
) -> None:
    auth = await _admin(any_client)
    # ASGITransport answers only when the stream ends: drive it beside the polls.
    stream = asyncio.create_task(
        any_client.post(
            "/v1/agents/approval/stream", json={"input": _unique("Scale the tier")}, headers=auth
        )
    )

    async def waiting() -> list[dict[str, Any]]:
        response = await any_client.get("/v1/runs?status=input_required", headers=auth)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    try:
        (run,) = await _until(waiting, lambda items: len(items) == 1, "input_required")
        choice = run["pending_input"]
        assert choice["kind"] == "choice" and choice["choices"] == ["low", "normal", "high"]
        assert choice["prompt"] and choice["request_id"]
        assert run["agent"] == "approval" and run["output"] is None
        run_id = run["run_id"]
        answered = await any_client.post(
            f"/v1/runs/{run_id}/input",
            json={"request_id": choice["request_id"], "value": "high"},
            headers=auth,
        )
        assert answered.status_code == 202, answered.text
        confirm = (
            await _until(
                lambda: _run(any_client, auth, run_id),
                lambda r: (
                    r["pending_input"] is not None
                    and r["pending_input"]["request_id"] != choice["request_id"]
                ),
                "the second question",
                timeout=5,
            )
        )["pending_input"]
        assert confirm["kind"] == "confirm" and "high priority" in confirm["prompt"]
        await any_client.post(
            f"/v1/runs/{run_id}/input",
            json={"request_id": confirm["request_id"], "value": True},
            headers=auth,
        )
        response = await asyncio.wait_for(stream, 10)
    finally:
        stream.cancel()
    assert response.status_code == 200 and response.headers["x-run-id"] == run_id
    frames = [f for f in parse_lines(iter(response.text.splitlines())) if f.event]
    assert [f.event for f in frames].count("input_required") == 2
    assert frames[-1].event == "run_completed"
    done = await _run(any_client, auth, run_id)
    assert done["status"] == "completed" and done["pending_input"] is None
    assert done["output"].startswith("Approved at high priority")


async def test_a_background_task_is_a_run_of_kind_task(any_client: AppClient) -> None:
    auth = await _admin(any_client)
    submitted = await any_client.post(
        "/v1/tasks",
        json={"agent": "chat", "input": _unique("Work in the background")},
        headers=auth,
    )
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    foreground = await _invoke(any_client, auth, input=_unique("And in front"))
    run = await _until(
        lambda: _run(any_client, auth, task_id),
        lambda r: r["status"] not in {"queued", "running"},
        "the task's end",
    )
    assert run["kind"] == "task" and run["status"] == "completed" and run["output"]
    assert run["agent"] == "chat" and run["usage"]["completion_tokens"] > 0
    task = (await any_client.get(f"/v1/tasks/{task_id}/result", headers=auth)).json()
    assert task["output"] == run["output"]
    listed = (await any_client.get("/v1/runs", headers=auth)).json()
    kinds = {r["run_id"]: r["kind"] for r in listed["items"]}
    assert kinds == {task_id: "task", foreground["run_id"]: "run"}
    only_done = (await any_client.get("/v1/runs?status=completed", headers=auth)).json()
    assert {r["run_id"] for r in only_done["items"]} == {task_id, foreground["run_id"]}


# -- WebSocket: the disconnect policy -------------------------------------------------------


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
def socket_app(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> Iterator[tuple[TestClient, Auth]]:
    overrides: dict[str, Any] = {}
    if request.param != "memory":
        overrides["REDIS_URL"] = redis_url_for(request, str(request.param))
    # Paced: a chat answer streams for about a second, so the socket closes mid-run.
    settings = make_settings(RATE_LIMIT_ENABLED=False, OFFLINE_TOKENS_PER_SECOND=30, **overrides)
    app = create_app(settings, services=build_services(settings))
    with TestClient(app) as client:
        token = client.post(
            "/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def _start_and_close(client: TestClient, auth: Auth, **options: Any) -> str:
    """Start a chat run on a socket, read its first token, close the socket; the run id."""
    with client.websocket_connect("/v1/agents/chat/ws", headers=auth) as socket:
        socket.send_json({"type": "start", "input": _unique("Keep going"), **options})
        started = socket.receive_json()
        assert started["type"] == "run_started", started
        assert socket.receive_json()["type"] == "token"
    run_id: str = started["run_id"]
    return run_id


def _ended(client: TestClient, auth: Auth, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=auth).json()
        if run["status"] not in LIVE:
            return run
        assert time.monotonic() < deadline, f"the run never ended: {run}"
        time.sleep(0.02)


def test_a_socket_run_that_continues_outlives_its_socket(
    socket_app: tuple[TestClient, Auth],
) -> None:
    client, auth = socket_app
    run_id = _start_and_close(client, auth, on_disconnect="continue")
    assert client.get(f"/v1/runs/{run_id}", headers=auth).json()["status"] == "running"
    run = _ended(client, auth, run_id)
    assert run["status"] == "completed" and run["error_code"] is None
    events = client.get(f"/v1/runs/{run_id}/events", headers=auth)
    frames = [f for f in parse_lines(iter(events.text.splitlines())) if f.event]
    assert frames[-1].event == "run_completed"
    assert run["output"] == "".join(f.json["text"] for f in frames if f.event == "token")
    assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))


def test_a_socket_run_is_cancelled_with_its_socket_by_default(
    socket_app: tuple[TestClient, Auth],
) -> None:
    client, auth = socket_app
    run = _ended(client, auth, _start_and_close(client, auth))
    assert run["status"] == "cancelled" and run["error_code"] == "client_disconnected"


async def test_without_redis_only_the_latest_finished_runs_are_kept(
    make_settings: SettingsFactory,
) -> None:
    """MEMORY_FINISHED_RUNS_MAX: a process without Redis keeps the newest finished runs, not
    an hour of them; the oldest goes first, whole (record and event log)."""
    settings = make_settings(RATE_LIMIT_ENABLED=False, MEMORY_FINISHED_RUNS_MAX=100)
    async with app_client(settings) as client:
        auth = await _admin(client)
        runs = [
            (await _invoke(client, auth, input=f"run {index}", store=False))["run_id"]
            for index in range(102)
        ]
        for gone in runs[:2]:
            response = await client.get(f"/v1/runs/{gone}", headers=auth)
            assert response.status_code == 404, response.text
            events = await client.get(f"/v1/runs/{gone}/events", headers=auth)
            assert events.status_code == 404, events.text
        assert (await _run(client, auth, runs[2]))["status"] == "completed"
        assert (await _run(client, auth, runs[-1]))["status"] == "completed"
        listed = await client.get("/v1/runs", params={"limit": 1}, headers=auth)
        assert listed.json()["total"] == 100

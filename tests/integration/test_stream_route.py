"""GET /v1/stream/tasks/{task_id}: one URL, SSE or WebSocket as the request asks.

SSE of finished tasks in-process (the stream ends by itself); the WebSocket upgrade and a
live stream against a real server process (ASGITransport neither streams nor upgrades).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from app.api.router import mount_routes
from app.core.routing import RouteTable
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem
from tests.support import memory_agents
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame, parse_lines

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = pytest.mark.xdist_group("stream-route")

KEEPER = "tests.support.memory_agents:keeper"
SSE = {"Accept": "text/event-stream"}
FINISHED = frozenset({"completed", "failed", "cancelled"})
Auth = dict[str, str]


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[AppClient]:
    settings = make_settings(RATE_LIMIT_ENABLED=False, AGENTS=[KEEPER])
    async with app_client(settings) as http:
        yield http


async def _admin(client: httpx.AsyncClient) -> Auth:
    return {"Authorization": f"Bearer {await login(client)}"}


async def _finished_task(client: httpx.AsyncClient, auth: Auth, agent: str, text: str) -> str:
    response = await client.post("/v1/tasks", json={"agent": agent, "input": text}, headers=auth)
    assert response.status_code == 202, response.text
    task_id = str(response.json()["task_id"])
    deadline = time.monotonic() + 10
    while (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()["status"] not in FINISHED:
        assert time.monotonic() < deadline, "the task never finished"
        await asyncio.sleep(0.02)
    return task_id


def _frames(response: httpx.Response) -> list[Frame]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [f for f in parse_lines(iter(response.text.splitlines())) if f.event]


def _wire(frames: list[Frame]) -> list[tuple[str | None, str | None, str]]:
    return [(f.id, f.event, f.data) for f in frames]


async def test_sse_by_accept_header_is_the_task_event_stream_with_log_and_summary(
    client: AppClient,
) -> None:
    auth = await _admin(client)
    task_id = await _finished_task(client, auth, "keeper", "What is 6*7?")
    original = _frames(await client.get(f"/v1/tasks/{task_id}/events", headers=auth))
    frames = _frames(await client.get(f"/v1/stream/tasks/{task_id}", headers={**auth, **SSE}))
    assert _wire(frames) == _wire(original)
    # No Accept header at all is SSE too: only an upgrade asks for the WebSocket.
    assert _wire(_frames(await client.get(f"/v1/stream/tasks/{task_id}", headers=auth))) == _wire(
        frames
    )

    kinds = [f.event for f in frames]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed"
    assert kinds.index("log") < kinds.index("tool_call") < kinds.index("memory_summary")
    log = frames[kinds.index("log")].json
    assert log["level"] == "debug" and log["message"] == "Reading the session"
    assert log["data"] == {"messages": 0, "input": "What is 6*7?"}
    summary = frames[kinds.index("memory_summary")].json
    assert summary["summary"] == memory_agents.summary(0)
    assert summary["messages_summarized"] == 0


async def test_resume_gives_exactly_the_later_frames(client: AppClient) -> None:
    auth = await _admin(client)
    task_id = await _finished_task(client, auth, "chat", "Tell me a short story.")
    url = f"/v1/stream/tasks/{task_id}"
    full = _wire(_frames(await client.get(url, headers={**auth, **SSE})))
    assert [int(str(frame[0])) for frame in full] == list(range(1, len(full) + 1))
    for seen in (1, len(full) // 2, len(full) - 1):
        resumed = await client.get(url, headers={**auth, **SSE, "Last-Event-ID": str(seen)})
        assert _wire(_frames(resumed)) == full[seen:]
        # ?after= says the same, and wins over the header.
        query = await client.get(
            f"{url}?after={seen}", headers={**auth, **SSE, "Last-Event-ID": "1"}
        )
        assert _wire(_frames(query)) == full[seen:]
    bad = await client.get(url, headers={**auth, **SSE, "Last-Event-ID": "-1"})
    assert_problem(bad, 400, "invalid_last_event_id")


async def test_another_callers_or_an_unknown_task_is_404(client: AppClient) -> None:
    admin = await _admin(client)
    task_id = await _finished_task(client, admin, "chat", "Hello.")
    key = await client.post(
        "/v1/auth/api-keys", json={"name": "reader", "scopes": ["tasks:read"]}, headers=admin
    )
    other = {"X-API-Key": key.json()["key"]}
    for auth, path in (
        (other, task_id),
        (admin, uuid.uuid4().hex),
        (admin, "not-a-task"),
    ):
        response = await client.get(f"/v1/stream/tasks/{path}", headers={**auth, **SSE})
        assert_problem(response, 404, "task_not_found")
    assert_problem(
        await client.get(f"/v1/stream/tasks/{task_id}", headers=SSE), 401, "unauthorized"
    )


async def test_the_assistant_logs_after_its_round_of_tool_calls(client: AppClient) -> None:
    auth = await _admin(client)
    task_id = await _finished_task(client, auth, "assistant", "What is 12*(3+4)?")
    frames = _frames(await client.get(f"/v1/stream/tasks/{task_id}", headers={**auth, **SSE}))
    kinds = [f.event for f in frames]
    assert kinds.count("log") == 1
    assert kinds.index("tool_result") < kinds.index("log") < kinds.index("step")
    log = frames[kinds.index("log")].json
    assert log["level"] == "info"
    assert log["data"] == {"step": 1, "tools": 1, "all_succeeded": True}


def test_both_transports_have_the_route_template(make_settings: SettingsFactory) -> None:
    """Metrics, logs and rate limits label by template: the URL must not fall to unmatched."""
    table = RouteTable()
    mount_routes(FastAPI(), make_settings(), routes=table)
    path = f"/v1/stream/tasks/{uuid.uuid4().hex}"
    for scope_type, method in (("http", "GET"), ("websocket", "")):
        template = table.match(scope_type=scope_type, method=method, path=path)
        assert template == "/v1/stream/tasks/{task_id}", scope_type


# -- a real server: the WebSocket upgrade, and a stream followed live ---------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"AGENTS": KEEPER, "RATE_LIMIT_ENABLED": "false", "OFFLINE_TOKENS_PER_SECOND": "200"}
    with ServerProcess(env=env) as process:
        yield process


def _token(server: ServerProcess) -> str:
    response = httpx.post(
        f"{server.url}/v1/auth/token",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _submit(server: ServerProcess, token: str, agent: str, text: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/tasks",
        json={"agent": agent, "input": text},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _socket_events(url: str, token: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with connect(url, subprotocols=[Subprotocol("bearer"), Subprotocol(token)]) as ws:
        try:
            while True:
                events.append(json.loads(ws.recv(timeout=15)))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1000
    return events


def test_a_websocket_upgrade_on_the_same_url_gets_the_task_socket(server: ServerProcess) -> None:
    token = _token(server)
    task_id = _submit(server, token, "chat", "Tell me about streams.")
    ws_url = f"ws://127.0.0.1:{server.port}/v1/stream/tasks/{task_id}"
    live = _socket_events(ws_url, token)  # opened at once: it follows the task live
    assert live[0]["type"] == "run_started" and live[-1]["type"] == "run_completed"
    assert [event["seq"] for event in live] == list(range(1, len(live) + 1))

    headers = {"Authorization": f"Bearer {token}", **SSE}
    with httpx.stream("GET", f"{server.url}/v1/stream/tasks/{task_id}", headers=headers) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in parse_lines(sse.iter_lines()) if f.event]
    assert [frame.json for frame in frames] == live  # one log, two transports

    resumed = _socket_events(f"{ws_url}?after=2", token)
    assert resumed == live[2:]

    with pytest.raises(InvalidStatus):  # refused before the upgrade, like the tasks socket
        connect(
            f"ws://127.0.0.1:{server.port}/v1/stream/tasks/{uuid.uuid4().hex}",
            subprotocols=[Subprotocol("bearer"), Subprotocol(token)],
        ).close()

    scraped = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert 'route="/v1/stream/tasks/{task_id}"' in scraped


def test_log_and_summary_events_arrive_live_over_sse(server: ServerProcess) -> None:
    token = _token(server)
    task_id = _submit(server, token, "keeper", "What is 6*7?")
    headers = {"Authorization": f"Bearer {token}", **SSE}
    with httpx.stream(
        "GET", f"{server.url}/v1/stream/tasks/{task_id}", headers=headers, timeout=15
    ) as sse:
        frames = [f for f in parse_lines(sse.iter_lines()) if f.event]
    kinds = [frame.event for frame in frames]
    assert kinds[-1] == "run_completed"
    assert {"log", "memory_summary"} <= set(kinds)
    assert frames[-1].json["output"] == memory_agents.answer(0)

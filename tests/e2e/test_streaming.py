"""SSE and WebSocket against a real server process: real sockets, real timing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.connection import Connection
from websockets.typing import Subprotocol

from tests.e2e.conftest import login
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame, parse_lines

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = pytest.mark.xdist_group("streaming")


def _stream(server: ServerProcess, token: str, agent: str, body: dict[str, Any]) -> httpx.Response:
    client = httpx.Client(base_url=server.url, timeout=30)
    request = client.build_request(
        "POST",
        f"/v1/agents/{agent}/stream",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    return client.send(request, stream=True)


def _metric(server: ServerProcess, name: str, labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_sse_streams_tokens_as_they_are_produced() -> None:
    env = {"OFFLINE_TOKENS_PER_SECOND": "20", "OFFLINE_RESPONSE_TOKENS": "12"}
    with ServerProcess(env=env) as server:
        token = login(server.url)
        response = _stream(server, token, "chat", {"input": "stream please"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-run-id"]
        arrivals: list[tuple[float, Frame]] = []
        for frame in parse_lines(response.iter_lines()):
            arrivals.append((time.monotonic(), frame))
        response.close()
        frames = [frame for _, frame in arrivals]
        assert frames[0].event == "run_started" and frames[-1].event == "run_completed"
        ids = [int(frame.id) for frame in frames if frame.id]
        assert ids == list(range(1, len(frames) + 1))  # every frame has the next seq
        token_times = [t for t, frame in arrivals if frame.event == "token"]
        assert len(token_times) == 12
        # 12 tokens at 20/s arrive over ~0.55 s, one by one, not in one burst at the end.
        assert token_times[-1] - token_times[0] > 0.3
        text = "".join(frame.json["text"] for frame in frames if frame.event == "token")
        assert frames[-1].json["output"] == text


def test_sse_sends_keepalive_comments_while_idle() -> None:
    env = {"OFFLINE_LATENCY_MS": "1500", "SSE_KEEPALIVE_SECONDS": "0.3"}
    with ServerProcess(env=env) as server:
        token = login(server.url)
        response = _stream(server, token, "chat", {"input": "slow"})
        frames = list(parse_lines(response.iter_lines()))
        response.close()
        keepalives = [f for f in frames if "keep-alive" in f.comments]
        assert len(keepalives) >= 3
        assert frames[-1].event == "run_completed"


def test_client_disconnect_cancels_the_run_within_a_second() -> None:
    env = {"OFFLINE_LATENCY_MS": "8000"}
    with ServerProcess(env=env) as server:
        token = login(server.url)
        response = _stream(server, token, "chat", {"input": "never mind"})
        frames = parse_lines(response.iter_lines())  # keep a reference: GC would close it
        first = next(frames)
        assert first.event == "run_started"
        assert _metric(server, "agent_active_runs", 'agent="chat"') == 1
        response.close()
        closed_at = time.monotonic()
        while time.monotonic() - closed_at < 1.0:
            if _metric(server, "agent_runs_total", 'agent="chat",status="cancelled"') == 1:
                break
            time.sleep(0.05)
        assert _metric(server, "agent_runs_total", 'agent="chat",status="cancelled"') == 1
        assert _metric(server, "agent_active_runs", 'agent="chat"') == 0


def test_an_error_after_the_stream_started_is_an_in_band_event() -> None:
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # discard port: nothing listens
        "OPENAI_API_KEY": "sk-test-never-shown",
        "OPENAI_MAX_RETRIES": "0",
    }
    with ServerProcess(env=env) as server:
        token = login(server.url)
        response = _stream(server, token, "chat", {"input": "hello"})
        assert response.status_code == 200
        frames = list(parse_lines(response.iter_lines()))
        response.close()
        assert [f.event for f in frames] == ["run_started", "error"]
        error = frames[-1].json
        assert error["code"].startswith("llm_")
        assert "sk-test" not in frames[-1].data and "Traceback" not in frames[-1].data


def _ws_url(server: ServerProcess, agent: str, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/v1/agents/{agent}/ws{query}"


def _until(ws: Connection, *types: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(ws.recv(timeout=10))
        events.append(event)
        if event["type"] in types:
            return events


@pytest.fixture(scope="module")
def ws_server() -> Iterator[ServerProcess]:
    with ServerProcess() as server:
        yield server


def test_websocket_human_in_the_loop_with_subprotocol_token(ws_server: ServerProcess) -> None:
    token = login(ws_server.url)
    subprotocols = [Subprotocol("bearer"), Subprotocol(token)]
    with connect(_ws_url(ws_server, "approval"), subprotocols=subprotocols) as ws:
        assert ws.subprotocol == "bearer"
        ws.send(json.dumps({"type": "start", "input": "Rotate the API keys"}))
        events = _until(ws, "input_required")
        assert events[0]["type"] == "run_started"
        choice = events[-1]
        assert choice["kind"] == "choice" and choice["choices"] == ["low", "normal", "high"]
        ws.send(
            json.dumps({"type": "input", "request_id": choice["request_id"], "value": "urgent"})
        )
        rejected = json.loads(ws.recv(timeout=5))
        assert rejected["type"] == "input_rejected" and rejected["code"] == "invalid_input"
        ws.send(json.dumps({"type": "input", "request_id": choice["request_id"], "value": "high"}))
        confirm = _until(ws, "input_required")[-1]
        assert confirm["kind"] == "confirm" and "high" in confirm["prompt"]
        ws.send(json.dumps({"type": "input", "request_id": confirm["request_id"], "value": True}))
        done = _until(ws, "run_completed", "error")[-1]
        assert done["type"] == "run_completed"
        assert done["output"].startswith("Approved at high priority")
        # The socket stays open for another run.
        ws.send(json.dumps({"type": "start", "input": "Delete the staging database"}))
        request = _until(ws, "input_required")[-1]
        ws.send(json.dumps({"type": "cancel"}))
        end = _until(ws, "run_completed", "error")[-1]
        assert end == {**end, "type": "error", "code": "cancelled"}
        assert request["kind"] == "choice"


def test_websocket_token_in_query_and_refusals(ws_server: ServerProcess) -> None:
    token = login(ws_server.url)
    with connect(_ws_url(ws_server, "chat", f"?token={token}")) as ws:
        ws.send(json.dumps({"type": "start", "input": "hi"}))
        assert _until(ws, "run_completed", "error")[-1]["type"] == "run_completed"
        ws.send("not json")
        assert json.loads(ws.recv(timeout=5))["code"] == "bad_message"
        ws.send(json.dumps({"type": "start", "input": ""}))
        assert json.loads(ws.recv(timeout=5))["code"] == "validation_error"
    with pytest.raises(InvalidStatus) as refused:
        connect(_ws_url(ws_server, "chat")).close()
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(_ws_url(ws_server, "chat", "?token=garbage")).close()
    assert token not in ws_server.logs()


def test_websocket_disconnect_cancels_the_run_within_a_second() -> None:
    with ServerProcess(env={"OFFLINE_LATENCY_MS": "8000"}) as server:
        token = login(server.url)
        with connect(_ws_url(server, "chat", f"?token={token}")) as ws:
            ws.send(json.dumps({"type": "start", "input": "slow"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "run_started"
            assert _metric(server, "agent_active_runs", 'agent="chat"') == 1
        closed_at = time.monotonic()
        while time.monotonic() - closed_at < 1.0:
            if _metric(server, "agent_runs_total", 'agent="chat",status="cancelled"') == 1:
                break
            time.sleep(0.05)
        assert _metric(server, "agent_runs_total", 'agent="chat",status="cancelled"') == 1
        assert _metric(server, "agent_active_runs", 'agent="chat"') == 0


def test_websocket_handshakes_are_rate_limited_and_refused_with_problem_json() -> None:
    with ServerProcess(env={"RATE_LIMIT_REQUESTS": "2"}) as server:
        token = login(server.url)
        for _ in range(2):
            with connect(_ws_url(server, "chat", f"?token={token}")):
                pass
        with pytest.raises(InvalidStatus) as limited:
            connect(_ws_url(server, "chat", f"?token={token}")).close()
        response = limited.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["Content-Type"] == "application/problem+json"
        assert json.loads(response.body)["code"] == "rate_limited"
        with pytest.raises(InvalidStatus) as bad_token:
            connect(_ws_url(server, "approval", "?token=not-a-jwt")).close()
        assert bad_token.value.response.status_code == 401
        assert json.loads(bad_token.value.response.body)["code"] == "token_invalid"

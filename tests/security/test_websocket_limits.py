"""Finding 3: WebSocket runs bypassed the rate limit and the concurrency caps.

One socket to /v1/agents/chat/ws started 150 runs in 22 s with no 429, while /invoke refused
the 121st. Every ``start`` frame is now charged to the bucket of POST .../stream for the same
principal, a socket runs one run at a time (a start during a run is refused), and the
per-principal cap on in-flight runs counts socket runs like SSE ones. Real server processes,
real sockets.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.security.conftest import bearer, login
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines

STREAM_ROUTE = "POST /v1/agents/{agent}/stream"
# A run that lasts (100 tokens at 5/s) until the test closes it.
SLOW_MODEL = {"OFFLINE_TOKENS_PER_SECOND": "5", "OFFLINE_RESPONSE_TOKENS": "100"}


def _ws_url(server: ServerProcess, token: str, agent: str = "chat") -> str:
    return f"ws://127.0.0.1:{server.port}/v1/agents/{agent}/ws?token={token}"


def _start(ws: Connection, text: str) -> None:
    ws.send(json.dumps({"type": "start", "input": text}))


def _recv(ws: Connection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return frame


def _until_end(ws: Connection) -> list[dict[str, Any]]:
    frames = [_recv(ws)]
    while frames[-1]["type"] not in ("run_completed", "error"):
        frames.append(_recv(ws))
    return frames


def _api_key(server: ServerProcess, admin_token: str, *scopes: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/auth/api-keys",
        json={"name": "second-principal", "scopes": list(scopes)},
        headers=bearer(admin_token),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def test_socket_starts_are_charged_to_the_stream_routes_bucket() -> None:
    env = {"RATE_LIMIT_ROUTES": json.dumps({STREAM_ROUTE: "4/minute"})}
    with ServerProcess(env=env) as server:
        token = login(server.url)
        stream_url = f"{server.url}/v1/agents/chat/stream"
        for i in range(2):
            sse = httpx.post(stream_url, json={"input": f"sse {i}"}, headers=bearer(token))
            assert sse.status_code == 200, sse.text
        with connect(_ws_url(server, token)) as ws:
            for i in range(2):  # the bucket's 3rd and 4th runs
                _start(ws, f"socket {i}")
                assert _until_end(ws)[-1]["type"] == "run_completed"
            _start(ws, "one run too many")
            refused = _recv(ws)
            assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
            assert 1 <= refused["retry_after"] <= 60
            assert "4" in refused["message"]
            # The socket stays open and keeps refusing, without starting a run.
            _start(ws, "and another")
            assert _recv(ws)["code"] == "rate_limited"
            ws.send("not json")
            assert _recv(ws)["code"] == "bad_message"
        # One bucket: the HTTP route is refused too, after runs started over the socket.
        limited = httpx.post(stream_url, json={"input": "sse again"}, headers=bearer(token))
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        # The bucket is the principal's: another principal's socket still starts runs.
        key = _api_key(server, token, "agents:run")
        url = f"ws://127.0.0.1:{server.port}/v1/agents/chat/ws"
        with connect(url, additional_headers={"X-API-Key": key}) as ws:
            _start(ws, "another principal")
            assert _until_end(ws)[-1]["type"] == "run_completed"


def test_a_start_during_a_run_is_refused_and_the_run_goes_on() -> None:
    with ServerProcess(env={"OFFLINE_LATENCY_MS": "1500"}) as server:
        token = login(server.url)
        with connect(_ws_url(server, token)) as ws:
            _start(ws, "the first run")
            assert _recv(ws)["type"] == "run_started"
            _start(ws, "a second run on the same socket")
            refused = _recv(ws)
            # Not an `error` frame: that would read as the end of the run in progress.
            assert refused["type"] == "start_rejected", refused
            assert refused["code"] == "too_many_concurrent_runs"
            assert refused["limit"] == 1
            frames = _until_end(ws)
            assert frames[-1]["type"] == "run_completed"
            assert [f for f in frames if f["type"] == "run_started"] == []  # no second run
            # Once the run has ended the socket takes the next one.
            _start(ws, "the next run")
            assert _recv(ws)["type"] == "run_started"
            ws.send(json.dumps({"type": "cancel"}))
            assert _until_end(ws)[-1]["code"] == "cancelled"


def test_the_per_principal_run_cap_counts_socket_runs() -> None:
    env = {**SLOW_MODEL, "MAX_CONCURRENT_RUNS_PER_PRINCIPAL": "1"}
    with ServerProcess(env=env) as server:
        token = login(server.url)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            request = http.build_request(
                "POST", "/v1/agents/chat/stream", json={"input": "hold"}, headers=bearer(token)
            )
            sse = http.send(request, stream=True)
            frames = parse_lines(sse.iter_lines())
            assert next(frames).event == "run_started"
            with connect(_ws_url(server, token)) as ws:
                _start(ws, "over the cap")
                refused = _recv(ws)
                assert refused["type"] == "error", refused
                assert refused["code"] == "too_many_concurrent_runs"
                assert refused["retry_after"] >= 1
                sse.close()  # the SSE run is cancelled and gives its slot back
                deadline = time.monotonic() + 5
                while True:
                    _start(ws, "now there is room")
                    frame = _recv(ws)
                    if frame["type"] == "run_started":
                        break
                    assert frame["code"] == "too_many_concurrent_runs"
                    assert time.monotonic() < deadline, "the closed stream kept its slot"
                    time.sleep(0.05)
                # A socket run holds the slot against the HTTP routes as well.
                invoke = http.post(
                    "/v1/agents/chat/invoke", json={"input": "x"}, headers=bearer(token)
                )
                assert invoke.status_code == 429
                assert invoke.json()["code"] == "too_many_concurrent_runs"
                assert int(invoke.headers["Retry-After"]) >= 1
                ws.send(json.dumps({"type": "cancel"}))
                assert _until_end(ws)[-1]["code"] == "cancelled"

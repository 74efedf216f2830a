"""SIGTERM under gunicorn (2 workers) with requests, SSE streams and WebSockets in flight."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.conftest import login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines

GRACE = 10


def test_sigterm_drains_requests_and_ends_streams_with_a_final_event(
    redis_server: RedisServer,
) -> None:
    # Several workers share their users, tokens and limits through Redis, as in production
    # (without it each worker bootstraps its own admin, and a token issued before another
    # worker's bootstrap is refused there as older than the admin's credentials).
    redis_server.start()
    env = {
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "e2e-graceful:",
        "OFFLINE_LATENCY_MS": "1500",
        "OFFLINE_TOKENS_PER_SECOND": "5",
        # Streams would take 40 s, longer than the grace; the requests ask for 3 tokens.
        "OFFLINE_RESPONSE_TOKENS": "200",
        "SHUTDOWN_STREAM_GRACE_SECONDS": "2",
        "GUNICORN_GRACEFUL_TIMEOUT": str(GRACE),
        "RATE_LIMIT_REQUESTS": "1000",
        "CACHE_ENABLED": "false",
        "SECRET_KEY": "graceful-shutdown-test-key-of-at-least-32-bytes",
    }
    server = ServerProcess(env=env, gunicorn=True, workers=2).start()
    try:
        token = login(server.url)
        headers = {"Authorization": f"Bearer {token}"}
        results: dict[str, list[Any]] = {"requests": [], "streams": [], "sockets": []}
        started = threading.Barrier(28)

        def request(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                started.wait()
                response = client.post(
                    "/v1/agents/chat/invoke",
                    json={"input": f"question {i}", "params": {"max_tokens": 3}},
                    headers=headers,
                )
                results["requests"].append(response.status_code)

        def stream(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                with client.stream(
                    "POST",
                    "/v1/agents/chat/stream",
                    json={"input": f"long {i}"},
                    headers=headers,
                ) as response:
                    frames = parse_lines(response.iter_lines())
                    first = next(frames)
                    assert first.event == "run_started"
                    started.wait()
                    results["streams"].append([first.event] + [f.event for f in frames])

        def socket(i: int) -> None:
            url = f"ws://127.0.0.1:{server.port}/v1/agents/chat/ws?token={token}"
            with connect(url) as ws:
                ws.send(json.dumps({"type": "start", "input": f"socket {i}"}))
                assert json.loads(ws.recv(timeout=10))["type"] == "run_started"
                started.wait()
                frames = []
                try:
                    while True:
                        frames.append(json.loads(ws.recv(timeout=30))["type"])
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                results["sockets"].append((frames, code))

        threads = [threading.Thread(target=request, args=(i,)) for i in range(20)]
        threads += [threading.Thread(target=stream, args=(i,)) for i in range(5)]
        threads += [threading.Thread(target=socket, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.3)  # the 20 requests are now waiting on the LLM's 1.5 s latency
        sent_at = time.monotonic()
        process = server.process
        assert process is not None  # start() launched it
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=GRACE + 5)
        exited_after = time.monotonic() - sent_at
        for thread in threads:
            thread.join(timeout=10)
        assert code == 0, server.logs()[-3000:]
        assert exited_after < GRACE
        assert results["requests"] == [200] * 20
        assert len(results["streams"]) == 5
        for events in results["streams"]:
            assert "token" in events
            assert events[-1] == "shutdown", events[-5:]
        assert len(results["sockets"]) == 2
        for frames, code in results["sockets"]:
            assert frames[-1] == "shutdown", frames[-5:]
            assert code == 1012  # service restart: reconnect
    finally:
        server.stop()

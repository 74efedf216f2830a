"""The task WebSocket shares the agent WebSocket's transport: it is counted as an open
stream, and on SIGTERM it gets the final ``shutdown`` frame and close 1012 (reconnect)."""

from __future__ import annotations

import json
import signal

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.e2e.conftest import login
from tests.support.server_process import ServerProcess


def _open_websockets(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('http_active_streams{transport="websocket"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_task_socket_is_counted_and_told_to_reconnect_on_shutdown() -> None:
    env = {
        "OFFLINE_TOKENS_PER_SECOND": "5",
        "OFFLINE_RESPONSE_TOKENS": "200",  # 40 s: still running when the server stops
        "SHUTDOWN_STREAM_GRACE_SECONDS": "1",
        # The socket is told before the app's lifespan ends; then the embedded worker would
        # give the still-running task its default 20 s grace before releasing it, time this
        # test (about the socket, not the task) only waited out in stop().
        "WORKER_SHUTDOWN_GRACE_SECONDS": "1",
        "CACHE_ENABLED": "false",
    }
    server = ServerProcess(env=env).start()
    try:
        token = login(server.url)
        submitted = httpx.post(
            f"{server.url}/v1/tasks",
            json={"agent": "chat", "input": "a long answer please"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["task_id"]
        url = f"ws://127.0.0.1:{server.port}/v1/tasks/{task_id}/ws"
        with connect(url, subprotocols=[Subprotocol("bearer"), Subprotocol(token)]) as ws:
            frames = [json.loads(ws.recv(timeout=10))["type"]]
            while "token" not in frames:
                frames.append(json.loads(ws.recv(timeout=10))["type"])
            assert _open_websockets(server.url) == 1
            assert server.process is not None  # the with block started it
            server.process.send_signal(signal.SIGTERM)
            try:
                while True:
                    frames.append(json.loads(ws.recv(timeout=15))["type"])
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
        assert frames[-1] == "shutdown", frames[-5:]
        assert code == 1012
    finally:
        server.stop()

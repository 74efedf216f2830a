"""Finding 9: transport limits.

5,000 headers and one 8 MiB header were accepted; a slow head and a slow body (1 byte every
3 s) held a connection for 24 s; WebSocket messages up to 16 MiB were accepted against a
1 MiB body limit; a binary or deeply nested WebSocket frame raised in the app and dropped the
socket without a close frame. Now the head is bounded in size and field count (431), head and
body must arrive in time (408), a process holds at most SERVER_LIMIT_CONCURRENCY connections
(503), WebSocket messages are bounded by MAX_REQUEST_BODY_BYTES (1009) and every frame the
protocol cannot use ends in a close frame or an error frame. Raw sockets against a real
uvicorn process and a real gunicorn master with its worker; the same limits hold in both.
Also bounded now: the in-memory task backend forgets finished tasks after
TASK_RETENTION_SECONDS (it kept every task a process ever ran).
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.store.run_records import RunRecord
from app.store.run_store_memory import MemoryRunStore
from app.tasks.backend import IdempotencyKey
from app.tasks.memory_backend import MemoryTaskBackend
from tests.security.conftest import login
from tests.support.server_process import ServerProcess

LIMITS = {
    "SERVER_HEADER_TIMEOUT_SECONDS": "1",
    "SERVER_BODY_TIMEOUT_SECONDS": "1",
    "MAX_REQUEST_BODY_BYTES": "65536",
}
SERVERS = [pytest.param(False, id="uvicorn"), pytest.param(True, id="gunicorn")]
CUT_OFF_WITHIN = 3.0  # the timeouts are 1 s; before the fix these connections stayed open


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(env=LIMITS, gunicorn=request.param, workers=1) as process:
        yield process


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Everything the server sends within ``seconds``, and whether it closed meanwhile."""
    received = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def _status(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response[9:12])


def _problem_code(response: bytes) -> str:
    _, _, body = response.partition(b"\r\n\r\n")
    return str(json.loads(body)["code"])


def test_request_heads_are_bounded(server: ServerProcess) -> None:
    # 150 fields in one packet: refused with a problem, and the socket closed.
    with _connect(server) as sock:
        fields = "".join(f"X-Field-{i}: v\r\n" for i in range(150))
        sock.sendall(f"GET /health/live HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode())
        response, closed = _read_until_closed(sock, 5)
    assert _status(response) == 431 and closed, response[:200]
    assert _problem_code(response) == "too_many_headers"

    # 5,000 fields: refused (431, or a reset when the close beats the last bytes).
    with _connect(server) as sock:
        fields = "".join(f"X-Field-{i}: v\r\n" for i in range(5000))
        try:
            sock.sendall(f"GET /health/live HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode())
            response, closed = _read_until_closed(sock, 5)
        except OSError:
            response, closed = b"", True
    assert closed and _status(response) in (431, None), response[:200]

    # One 8 MiB header: the server stops reading after SERVER_MAX_HEADER_BYTES.
    sent = 0
    response = b""
    with _connect(server) as sock:
        try:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: ")
            chunk = b"a" * 65536
            while sent < 8 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
            response, _ = _read_until_closed(sock, 5)
        except OSError:
            pass
    assert _status(response) in (431, None), response[:200]
    assert httpx.get(f"{server.url}/health/live").status_code == 200  # and it lives on


def test_slow_clients_are_cut_off(server: ServerProcess) -> None:
    # A head trickling in, one byte every 0.3 s.
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
        response, closed = b"", False
        while not closed and time.monotonic() - started < CUT_OFF_WITHIN:
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            chunk, closed = _read_until_closed(sock, 0.3)
            response += chunk
    assert closed, "a slow head kept its connection"
    assert _status(response) == 408 and _problem_code(response) == "request_timeout"

    # A body trickling in after a complete head.
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/auth/token HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
        )
        response, closed = b"", False
        while not closed and time.monotonic() - started < CUT_OFF_WITHIN:
            try:
                sock.sendall(b"u")
            except OSError:
                closed = True
                break
            chunk, closed = _read_until_closed(sock, 0.3)
            response += chunk
    assert closed, "a slow body kept its connection"
    assert _status(response) == 408, response[:200]

    # A connection that never sends a byte is closed too (silently).
    with _connect(server) as sock:
        response, closed = _read_until_closed(sock, CUT_OFF_WITHIN)
    assert closed and response == b""


@pytest.mark.parametrize("gunicorn", SERVERS)
def test_a_process_holds_a_bounded_number_of_connections(gunicorn: bool) -> None:
    env = {"SERVER_LIMIT_CONCURRENCY": "4"}
    with ServerProcess(env=env, gunicorn=gunicorn, workers=1) as server:
        idle = [_connect(server) for _ in range(4)]
        time.sleep(0.2)  # let the server accept them all
        try:
            over = httpx.get(f"{server.url}/health/live")
            assert over.status_code == 503, over.text
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{server.url}/health/live").status_code != 200:
            assert time.monotonic() < deadline, "connections were not released"
            time.sleep(0.05)


def _close_code(ws_url: str, frame: str | bytes) -> int | None:
    """The code of the server's close frame after ``frame`` (None: no close frame)."""
    try:
        with connect(ws_url, max_size=None) as ws:
            ws.send(frame)
            ws.recv(timeout=5)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the socket stayed open")


def test_websocket_frames_are_bounded_and_always_closed_with_a_code(
    server: ServerProcess,
) -> None:
    token = login(server.url)
    url = f"ws://127.0.0.1:{server.port}/v1/agents/chat/ws?token={token}"
    # A message larger than a request body may be: 1009 (message too big).
    oversized = json.dumps({"type": "start", "input": "x" * 65536})
    assert _close_code(url, oversized) == 1009
    # Binary frames are not this protocol: 1003 (unsupported data), not a dropped socket.
    assert _close_code(url, b"\x00\x01binary") == 1003
    # JSON nested past the parser's depth is an unusable frame like any other: an error
    # frame, and the socket goes on.
    with connect(url) as ws:
        ws.send("[" * 30_000 + "]" * 30_000)  # 60 kB, under the size limit
        assert json.loads(ws.recv(timeout=5))["code"] == "bad_message"
        ws.send(json.dumps({"type": "start", "input": "still here?"}))
        while (event := json.loads(ws.recv(timeout=10)))["type"] not in ("run_completed", "error"):
            pass
        assert event["type"] == "run_completed"
    # A client that vanishes mid-run (TCP reset, no close frame) costs no traceback either.
    with connect(url) as ws:
        ws.send(json.dumps({"type": "start", "input": "and gone"}))
        ws.recv(timeout=10)
        ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.socket.close()
    time.sleep(0.5)
    server.stop()
    logs = server.logs()
    assert "Traceback" not in logs and "Exception in ASGI application" not in logs, logs[-3000:]


async def test_the_memory_run_store_forgets_finished_runs_and_their_keys() -> None:
    retention = 0.2
    store = MemoryRunStore(events_max=100, retention_seconds=retention)
    backend = MemoryTaskBackend(store)
    done, running = (RunRecord(id=c * 32, owner="user:a", agent="chat", input="x") for c in "ab")
    key = IdempotencyKey(key="k-1", fingerprint="f")
    await backend.submit(done, idempotency=key)
    await backend.submit(running, idempotency=None)
    await store.append_event(done.id, "{}")
    for task_id in (done.id, running.id):
        assert await store.transition(task_id, to="running", allowed_from=frozenset({"queued"}))
    assert await store.transition(done.id, to="completed", allowed_from=frozenset({"running"}))
    assert await store.get(done.id) is not None  # kept for the retention...
    await asyncio.sleep(retention + 0.05)
    assert await store.get(done.id) is None  # ...then forgotten, events and key too
    assert await store.read_events(done.id, after=0, limit=10) == []
    again = await backend.submit(
        RunRecord(id="c" * 32, owner="user:a", agent="chat", input="x"), idempotency=key
    )
    assert again.outcome == "created"
    assert await store.get(running.id) is not None  # unfinished runs are never dropped

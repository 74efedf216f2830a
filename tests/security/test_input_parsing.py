"""Finding 8 (and params.max_tokens): input the parsers did not bound.

A malformed ``Last-Event-ID`` was a 500: ``'\\xb2'.isdigit()`` and ``('9' * 5000).isdigit()``
are true and ``int()`` then fails, while ``-1`` and full-width ``１２`` were read as 0 and 12.
Resume points (the header, ``?after=`` on the stream and on the task WebSocket) now accept
1 to 18 ASCII digits and answer anything else 400 problem+json. ``params.max_tokens`` was
passed to the model unbounded; past 32768 it is now 422. A real server process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.security.conftest import bearer, login
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = pytest.mark.xdist_group("input-parsing")

# Header values as raw bytes: what a hostile client really sends (latin-1 on the wire).
BAD_EVENT_IDS: list[bytes] = [
    b"\xb2",  # superscript two: isdigit() is true
    b"9" * 5000,  # isdigit() is true; int() refuses past 4300 digits
    b"-1",
    "１２".encode(),  # full-width digits: int() reads 12
    b"1_2",  # int() reads 12
    b"0x10",
    b"12 13",
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as process:
        yield process


def _finished_task(server: ServerProcess, token: str) -> str:
    submitted = httpx.post(
        f"{server.url}/v1/tasks",
        json={"agent": "chat", "input": "hello"},
        headers=bearer(token),
        timeout=20,
    )
    assert submitted.status_code in (200, 201, 202), submitted.text
    task_id = str(submitted.json()["task_id"])
    # Follow it to its end once, so every later stream ends by itself.
    with httpx.stream(
        "GET", f"{server.url}/v1/tasks/{task_id}/events", headers=bearer(token), timeout=20
    ) as events:
        assert events.status_code == 200
        frames = list(parse_lines(events.iter_lines()))
    assert frames[-1].event in ("run_completed", "error")
    return task_id


def _is_bad_event_id(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_last_event_id"


def test_malformed_resume_points_are_400_problems(server: ServerProcess) -> None:
    token = login(server.url)
    task_id = _finished_task(server, token)
    url = f"{server.url}/v1/tasks/{task_id}/events"
    for value in BAD_EVENT_IDS:
        headers = [(b"authorization", f"Bearer {token}".encode()), (b"last-event-id", value)]
        _is_bad_event_id(httpx.get(url, headers=headers))
        query = httpx.QueryParams({"after": value.decode("latin-1")})
        _is_bad_event_id(httpx.get(url, params=query, headers=bearer(token)))
        with pytest.raises(InvalidStatus) as refused:
            ws_url = f"ws://127.0.0.1:{server.port}/v1/tasks/{task_id}/ws?{query}"
            connect(ws_url, additional_headers=bearer(token)).close()
        assert refused.value.response.status_code == 400
        assert json.loads(refused.value.response.body or b"{}")["code"] == "invalid_last_event_id"

    # A well-formed id resumes after it (the ids are the frames' sequence numbers).
    with httpx.stream("GET", url, headers={**bearer(token), "Last-Event-ID": "2"}) as resumed:
        assert resumed.status_code == 200
        ids = [frame.id for frame in parse_lines(resumed.iter_lines())]
    assert ids and ids[0] == "3"


def test_max_tokens_is_bounded(server: ServerProcess) -> None:
    token = login(server.url)
    invoke = f"{server.url}/v1/agents/chat/invoke"
    for bad in (32_769, 10**12, 0, "64", True):
        refused = httpx.post(
            invoke, json={"input": "hi", "params": {"max_tokens": bad}}, headers=bearer(token)
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert "max_tokens" in refused.text
    ok = httpx.post(
        invoke, json={"input": "hi", "params": {"max_tokens": 32_768}}, headers=bearer(token)
    )
    assert ok.status_code == 200, ok.text

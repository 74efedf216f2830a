"""AG-UI against a real server process, driven by AG-UI's own JavaScript client (@ag-ui/client
HttpAgent, tests/js/agui/scenario.mjs) and by the Python package validating every frame as it
arrives. The npm packages come from tests/js/agui/package-lock.json (``npm ci``, once, under a
file lock shared by the xdist workers). Without node or npm the tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ag_ui.core import Event, EventType
from pydantic import TypeAdapter

from tests.e2e.conftest import login
from tests.support import npm
from tests.support.server_process import PROTOCOLS_ON, ROOT, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("agui-js")]

JS_DIR = ROOT / "tests" / "js" / "agui"
EVENTS: TypeAdapter[Any] = TypeAdapter(Event)


def _tool(name: str) -> str:
    return npm.tool(name)


def _installed() -> None:
    npm.installed(JS_DIR)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    _tool("node")
    _installed()
    # 40 tokens/s: an answer takes long enough to abort in the middle of it.
    with ServerProcess(env={**PROTOCOLS_ON, "OFFLINE_TOKENS_PER_SECOND": "40"}) as process:
        yield process


@pytest.fixture(scope="module")
def token(server: ServerProcess) -> str:
    return login(server.url)


def scenario(server: ServerProcess, token: str, name: str) -> dict[str, Any]:
    env = {**os.environ, "AGUI_BASE_URL": server.url, "AGUI_TOKEN": token}
    done = subprocess.run(  # noqa: S603 - a fixed command
        [_tool("node"), str(JS_DIR / "scenario.mjs"), name],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, f"node scenario {name} failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def get(server: ServerProcess, token: str, path: str) -> dict[str, Any]:
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_js_client_streams_a_conversation(server: ServerProcess, token: str) -> None:
    seen = scenario(server, token, "stream")
    assert seen["types"].count("RUN_STARTED") == seen["types"].count("RUN_FINISHED") == 2
    assert "TEXT_MESSAGE_CONTENT" in seen["types"]
    first, second = seen["results"]
    assert seen["newMessages"] == [first, second] and first and second
    assert seen["roles"] == ["user", "assistant", "user", "assistant"]
    # The client's thread is our session, with both exchanges in it.
    session = get(server, token, f"/v1/sessions/{seen['threadId']}")
    assert session["message_count"] == 4
    for run_id in seen["runIds"]:
        assert get(server, token, f"/v1/runs/{run_id}")["status"] == "completed"


def test_the_js_client_sees_a_tool_call_and_the_plan(server: ServerProcess, token: str) -> None:
    seen = scenario(server, token, "tool")
    (call,) = seen["toolCalls"]
    assert call["name"] == "calculator" and json.loads(call["arguments"]) == {"expression": "6*7"}
    assert seen["toolResults"] == [{"toolCallId": call["id"], "content": "42"}]
    assert seen["state"]["plan"]["items"], "STATE_DELTA put the plan in the client's state"
    assert "42" in seen["result"]


def test_the_js_client_answers_interrupts_with_resume(server: ServerProcess, token: str) -> None:
    seen = scenario(server, token, "interrupt")
    assert seen["outcomes"] == ["interrupt", "interrupt", "success"]
    assert [asked["reason"] for asked in seen["asked"]] == ["input_required", "confirmation"]
    assert seen["asked"][0]["schema"]["enum"] == ["low", "normal", "high"]
    assert seen["result"].startswith("Approved at high priority.")
    assert seen["pendingAfter"] == 0
    # Three AG-UI runs, one run of ours that waited twice.
    assert len(set(seen["runIds"])) == 1
    assert get(server, token, f"/v1/runs/{seen['runIds'][0]}")["status"] == "completed"


def test_the_js_client_gets_errors(server: ServerProcess, token: str) -> None:
    seen = scenario(server, token, "error")
    assert seen["errors"] == [
        {
            "code": "invalid_params",
            "message": "params: temperature must be 0..2 and max_tokens >= 1",
        }
    ]
    assert seen["types"] == ["RUN_STARTED", "RUN_ERROR"]
    refused = seen["refused"]
    assert refused["status"] == 404 and "agent_not_found" in refused["message"]


def test_aborting_in_the_js_client_cancels_the_run(server: ServerProcess, token: str) -> None:
    seen = scenario(server, token, "abort")
    assert seen["aborted"] and "TEXT_MESSAGE_CONTENT" in seen["types"]
    (run_id,) = seen["runIds"]
    deadline = time.monotonic() + 10
    record = get(server, token, f"/v1/runs/{run_id}")
    while record["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the closed socket within a second
        record = get(server, token, f"/v1/runs/{run_id}")
    assert record["status"] == "cancelled"
    assert record["error_code"] == "client_disconnected"


def test_every_frame_validates_and_a_lost_stream_resumes(server: ServerProcess, token: str) -> None:
    """Over a real socket: each frame parses as an AG-UI event (the Python package's models);
    the stream is dropped half-way and picked up again with Last-Event-ID, losing nothing."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "threadId": str(uuid.uuid4()),
        "runId": "first",
        "messages": [{"id": "u1", "role": "user", "content": "What is 6*7?"}],
        # The run goes on when the stream is lost, so the client can pick it up again.
        "forwardedProps": {"onDisconnect": "continue"},
    }
    seen: list[Any] = []
    last_id: str | None = None
    url = f"{server.url}/v1/agents/assistant/ag-ui"
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", url, json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        run_id = r.headers["X-Run-ID"]
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(EVENTS.validate_json(line[6:]))
            elif line.startswith("id: "):
                last_id = line[4:]
            if any(e.type == EventType.TOOL_CALL_RESULT for e in seen) and line.startswith("id: "):
                break  # the client loses the connection here
    assert last_id is not None
    rest = f"{server.url}/v1/agents/assistant/ag-ui/runs/{run_id}?agui_run_id=first"
    with (
        httpx.Client(timeout=30) as http,
        http.stream("GET", rest, headers={**headers, "Last-Event-ID": last_id}) as r,
    ):
        assert r.status_code == 200
        seen += [EVENTS.validate_json(line[6:]) for line in r.iter_lines() if line[:6] == "data: "]
    kinds = [e.type.value for e in seen]
    assert kinds[0] == "RUN_STARTED" and kinds.count("RUN_STARTED") == 1
    assert kinds[-1] == "RUN_FINISHED" and seen[-1].run_id == "first"
    assert kinds.count("TEXT_MESSAGE_START") == kinds.count("TEXT_MESSAGE_END")
    assert "42" in seen[-1].result


def test_node_modules_are_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text()
    assert "tests/js/**/node_modules/" in ignored.splitlines()
    assert Path(JS_DIR / "package-lock.json").exists()

"""A team's agents and tools, in its own folder outside app/, served by a real server process.

The plug-ins are the README's examples as printed, written into a fresh working directory;
the server runs there with ``python -P`` (no implicit current directory on sys.path, as with
the console script or gunicorn), so the AGENTS/TOOLS loader itself must make them importable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import login
from tests.support.server_process import TEST_ENV, ServerProcess
from tests.unit.agents.test_sdk import readme_example

# An agent of the same team that calls the README's tool, to show it is callable in a run.
ORDER_DESK = """\
from collections.abc import AsyncIterator

from app.sdk import Event, MessageEvent, RunContext, agent


@agent(name="order-desk", description="Looks an order up with the order_status tool.")
async def order_desk(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    ctx.begin_step()
    outcome = await ctx.call_tool("call_1", "order_status", {"order_id": input})
    yield MessageEvent(content=("ok: " if outcome.success else "failed: ") + outcome.output)
"""


# The README agent under a capitalised name: invocable, but no session could ever name it.
CAPITALISED = """\
from mypkg.agents import support

support.name = "Support"
"""


class PluginServer(ServerProcess):
    def command(self) -> list[str]:
        python, *rest = super().command()
        return [python, "-P", *rest]


@pytest.fixture
def team_folder(tmp_path: Path) -> Path:
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "agents.py").write_text(readme_example("# mypkg/agents.py"))
    (tmp_path / "mypkg" / "desk.py").write_text(ORDER_DESK)
    (tmp_path / "mypkg" / "capitalised.py").write_text(CAPITALISED)
    (tmp_path / "mytools.py").write_text(readme_example("# mytools.py"))
    return tmp_path


def _wait_for(client: httpx.Client, url: str, done: set[str]) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body: dict[str, object] = client.get(url).json()
        if body["status"] in done:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{url} never reached {done}")


def test_a_teams_agents_and_tools_load_from_its_working_directory(team_folder: Path) -> None:
    env = {"AGENTS": "mypkg.agents:support,mypkg.desk:order_desk", "TOOLS": "mytools:order_status"}
    with PluginServer(env=env, cwd=team_folder) as server:
        headers = {"Authorization": f"Bearer {login(server.url)}"}
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)

        tools = {tool["name"]: tool for tool in client.get("/v1/tools").json()["items"]}
        assert set(tools) == {"calculator", "current_time", "order_status"}
        assert tools["order_status"]["description"] == (
            "Look up the status of a customer's order by its id, like A-1001."
        )
        assert tools["order_status"]["parameters"] == {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "detail": {"enum": ["short", "full"], "type": "string", "default": "short"},
            },
            "required": ["order_id"],
            "additionalProperties": False,
        }

        # The tool runs inside a run; its refusal is a result the agent sees, not a crash.
        found = client.post("/v1/agents/order-desk/invoke", json={"input": "a-1001"})
        assert found.status_code == 200 and found.json()["output"] == "ok: shipped"
        missing = client.post("/v1/agents/order-desk/invoke", json={"input": "B-9"})
        assert missing.json()["output"] == "failed: no order B-9"

        # The README agent, asked for confirmation in a background task, says no.
        submitted = client.post("/v1/tasks", json={"agent": "support", "input": "Wrong invoice"})
        assert submitted.status_code == 202
        task_url = f"/v1/tasks/{submitted.json()['task_id']}"
        task = _wait_for(client, task_url, {"input_required"})
        pending = task["pending_input"]
        assert isinstance(pending, dict) and pending["kind"] == "confirm"
        answer = {"request_id": pending["request_id"], "value": False}
        assert client.post(f"{task_url}/input", json=answer).status_code == 202
        _wait_for(client, task_url, {"completed"})
        assert client.get(f"{task_url}/result").json()["output"] == "Not sent."


@pytest.mark.parametrize(
    ("setting", "entry", "complaint"),
    [
        ("AGENTS", "mypkg.nowhere:support", "cannot import 'mypkg.nowhere'"),
        ("AGENTS", "mypkg.agents:suport", "has no attribute 'suport'"),
        ("AGENTS", "mypkg.capitalised:support", "agent name 'Support' must match"),
        ("TOOLS", "mytools:ORDERS", "not a Tool"),
        ("TOOLS", "mytools", "must look like 'package.module:attribute'"),
    ],
)
def test_a_bad_entry_stops_the_server_with_one_line_naming_the_setting(
    team_folder: Path, setting: str, entry: str, complaint: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "app.entrypoints.cli", "serve", "--port", "1"],
        cwd=team_folder,
        env={**os.environ, **TEST_ENV, setting: entry},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{setting}: ") and complaint in lines[0]
    assert "Traceback" not in result.stderr

"""`agent-service run|chat|tasks` against a real server, driven through stdin and stdout as
a user at a terminal would: questions answered at the prompt, Ctrl-C (SIGINT) to cancel."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from agent_service_client import Client

from tests.support.cli_session import CliSession
from tests.support.server_process import ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli-client")]

PASSWORD = "admin-test-password"
# Every CLI process signs in, more often than the login route's 10 a minute allows.
UNLIMITED = {"RATE_LIMIT_ENABLED": "false"}
FAST = {**UNLIMITED, "OFFLINE_TOKENS_PER_SECOND": "0"}
# A run lasts seconds: long enough to interrupt it mid-answer.
SLOW = {**UNLIMITED, "OFFLINE_TOKENS_PER_SECOND": "40", "OFFLINE_RESPONSE_TOKENS": "400"}


@pytest.fixture(scope="module")
def fast() -> Iterator[ServerProcess]:
    with ServerProcess(env=FAST) as server:
        yield server


@pytest.fixture(scope="module")
def slow() -> Iterator[ServerProcess]:
    with ServerProcess(env=SLOW) as server:
        yield server


def _env(server: ServerProcess) -> dict[str, str]:
    return {
        "AGENT_SERVICE_URL": server.url,
        "AGENT_SERVICE_USERNAME": "admin",
        "AGENT_SERVICE_PASSWORD": PASSWORD,
    }


def _admin(server: ServerProcess) -> Client:
    return Client(server.url, username="admin", password=PASSWORD)


def test_run_streams_the_answer_to_stdout(fast: ServerProcess) -> None:
    cli = CliSession("run", "chat", "hello there", "--param", "max_tokens=6", env=_env(fast))
    try:
        assert cli.finish() == 0, cli.stderr
    finally:
        cli.kill()
    with _admin(fast) as client:
        run = client.list_runs(limit=1)["items"][0]
    assert cli.stdout == run["output"] + "\n"
    assert len(cli.stdout.split()) == 6


def test_run_asks_the_agents_questions_at_the_prompt(fast: ServerProcess) -> None:
    cli = CliSession("run", "approval", "Email the team", env=_env(fast))
    try:
        cli.wait_for("? Which priority should this action have?")
        cli.wait_for("  2) normal")
        cli.type("2")
        cli.wait_for("y/n> ")
        assert "Approve this action at normal priority?" in cli.stderr
        cli.type("y")
        assert cli.finish() == 0, cli.stderr
    finally:
        cli.kill()
    assert "Approved at normal priority. Action taken:" in cli.stdout


def test_ctrl_c_cancels_the_run(slow: ServerProcess) -> None:
    cli = CliSession("run", "chat", "tell me a long story", env=_env(slow))
    try:
        cli.wait_for("You wrote", where="stdout")  # tokens are arriving
        cli.interrupt()
        assert cli.finish() == 130
    finally:
        cli.kill()
    found = re.search(r"cancelled run ([0-9a-f]+)", cli.stderr)
    assert found is not None, cli.stderr
    with _admin(slow) as client:
        record = client.get_run(found.group(1))
    assert record["status"] == "cancelled"


def test_chat_keeps_one_session_across_turns(fast: ServerProcess) -> None:
    cli = CliSession("chat", "chat", "--param", "max_tokens=4", env=_env(fast))
    try:
        cli.wait_for("you> ")
        session_id = cli.stderr.split()[1].rstrip(";")
        cli.type("first question")
        cli.wait_for("you> you> ")
        cli.type("second question")
        cli.wait_for("you> you> you> ")
        cli.type("")
        assert cli.finish() == 0, cli.stderr
    finally:
        cli.kill()
    with _admin(fast) as client:
        messages = client.list_session_messages(session_id)["items"]
    said = [(m["role"], m["content"]) for m in messages]
    assert said[0] == ("user", "first question")
    assert said[2] == ("user", "second question")
    assert [role for role, _ in said] == ["user", "assistant", "user", "assistant"]
    assert cli.stdout.splitlines() == [said[1][1], said[3][1]]


def test_tasks_submit_follow_answers_and_the_other_verbs(fast: ServerProcess) -> None:
    env = _env(fast)
    cli = CliSession("tasks", "submit", "approval", "Ship it", "--follow", env=env)
    try:
        cli.wait_for("number or name> ")
        cli.type("high")
        cli.wait_for("y/n> ")
        cli.type("no")
        assert cli.finish() == 0, cli.stderr
    finally:
        cli.kill()
    assert "Not approved. No action was taken." in cli.stdout
    task_id = re.search(r'"task_id": "([0-9a-f]+)"', cli.stdout)
    assert task_id is not None

    show = CliSession("tasks", "show", task_id.group(1), env=env)
    assert show.finish() == 0, show.stderr
    assert '"status": "completed"' in show.stdout
    assert '"output": "Not approved. No action was taken."' in show.stdout

    listed = CliSession("tasks", "list", "--limit", "5", env=env)
    assert listed.finish() == 0
    assert task_id.group(1) in listed.stdout


def test_tasks_answer_and_cancel_a_waiting_task(fast: ServerProcess) -> None:
    env = _env(fast)
    with _admin(fast) as client:
        task_id = client.submit_task("approval", "Rename the repo")["task_id"]
        _wait_for_question(client, task_id, "choice")
        answered = CliSession("tasks", "answer", task_id, "normal", env=env)
        assert answered.finish() == 0, answered.stderr
        _wait_for_question(client, task_id, "confirm")
        cancelled = CliSession("tasks", "cancel", task_id, env=env)
        assert cancelled.finish() == 0, cancelled.stderr
        assert client.wait_task(task_id, timeout=15).status == "cancelled"


def test_credentials_from_flags_and_errors_are_one_line(fast: ServerProcess) -> None:
    with _admin(fast) as client:
        key = client.create_api_key("cli-test", ["agents:run"])["key"]
        token = client.login()["access_token"]
    url = {"AGENT_SERVICE_URL": fast.url}
    by_key = CliSession("run", "chat", "hi", "--param", "max_tokens=2", "--api-key", key, env=url)
    assert by_key.finish() == 0, by_key.stderr
    by_token = CliSession("run", "chat", "hi", "--param", "max_tokens=2", "--token", token, env=url)
    assert by_token.finish() == 0, by_token.stderr
    # A flag beats the environment's admin credentials: the key has no tasks:read scope.
    refused = CliSession("tasks", "list", "--api-key", key, env=_env(fast))
    assert refused.finish() == 1
    assert refused.stderr.startswith("error: 403 insufficient_scope: ")
    assert "(request " in refused.stderr and "Traceback" not in refused.stderr
    unknown = CliSession("run", "nope", "hi", "--api-key", key, env=url)
    assert unknown.finish() == 1
    assert unknown.stderr.startswith("error: 404 agent_not_found: ")


def _wait_for_question(client: Client, task_id: str, kind: str) -> None:
    import time

    deadline = time.monotonic() + 15
    while (client.get_task(task_id).get("pending_input") or {}).get("kind") != kind:
        assert time.monotonic() < deadline, client.get_task(task_id)
        time.sleep(0.05)

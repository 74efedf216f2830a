"""GET /v1/tasks/{task_id}/memory in-process (full middleware chain, embedded worker), on both
backends: what the agent works with, as its owner or an admin sees it, and nobody else."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem
from tests.support import memory_agents
from tests.support.redis_server import RedisServer
from tests.support.sse import parse_lines

Auth = dict[str, str]
FINISHED = frozenset({"completed", "failed", "cancelled"})
OWNER_SCOPES = ("agents:run", "sessions:read", "sessions:write", "tasks:read", "tasks:write")


@pytest.fixture(params=["memory", "redis"])
async def client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, redis_server: RedisServer
) -> AsyncIterator[AppClient]:
    values: dict[str, Any] = {
        "RATE_LIMIT_ENABLED": False,  # the tests poll
        "TASK_LEASE_SECONDS": 3,
        "WORKER_SHUTDOWN_GRACE_SECONDS": 0.2,
        "AGENTS": ["tests.support.memory_agents:keeper"],
    }
    if request.param == "redis":
        redis_server.start()
        values["REDIS_URL"] = redis_server.url
    async with app_client(make_settings(**values)) as http:
        yield http


async def _admin(client: httpx.AsyncClient) -> Auth:
    return {"Authorization": f"Bearer {await login(client)}"}


async def _key(client: httpx.AsyncClient, admin: Auth, *scopes: str) -> Auth:
    response = await client.post(
        "/v1/auth/api-keys",
        json={"name": f"key-{uuid.uuid4().hex[:8]}", "scopes": list(scopes)},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def _finished_task(client: httpx.AsyncClient, auth: Auth, **body: Any) -> str:
    response = await client.post("/v1/tasks", json=body, headers=auth)
    assert response.status_code == 202, response.text
    task_id = str(response.json()["task_id"])
    deadline = time.monotonic() + 10
    while True:
        status = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()["status"]
        if status in FINISHED:
            break
        assert time.monotonic() < deadline, f"the task never finished: {status}"
        await asyncio.sleep(0.02)
    assert status == "completed"
    return task_id


async def _memory(client: httpx.AsyncClient, auth: Auth, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tasks/{task_id}/memory", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(m["role"], m["content"]) for m in messages]


async def test_the_owner_sees_history_input_tool_round_answer_and_summary(
    client: AppClient,
) -> None:
    owner = await _key(client, await _admin(client), *OWNER_SCOPES)
    session = await client.post("/v1/sessions", json={"agent": "keeper"}, headers=owner)
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    first = await client.post(
        "/v1/agents/keeper/invoke",
        json={"input": "Remember the number 7.", "session_id": session_id},
        headers=owner,
    )
    assert first.status_code == 200, first.text

    task_id = await _finished_task(
        client, owner, agent="keeper", input="What is 6*7?", session_id=session_id
    )
    memory = await _memory(client, owner, task_id)

    assert memory["task_id"] == task_id and memory["session_id"] == session_id
    assert memory["truncated"] is False
    messages = memory["messages"]
    assert _turns(messages) == [
        ("user", "Remember the number 7."),  # the session history the run was given
        ("assistant", memory_agents.answer(0)),
        ("user", "What is 6*7?"),  # the task's input
        ("assistant", None),  # the model's round of tool calls
        ("tool", "42"),
        ("assistant", memory_agents.answer(2)),  # the agent's own message
    ]
    call = messages[3]["tool_calls"]
    assert call == [
        {"id": memory_agents.CALL_ID, "name": "calculator", "arguments": {"expression": "6*7"}}
    ]
    assert messages[4]["tool_call_id"] == memory_agents.CALL_ID
    assert messages[4]["name"] == "calculator"

    summary = memory["summary"]
    assert summary["summary"] == memory_agents.summary(2)
    assert summary["messages_summarized"] == 2
    events = (await client.get(f"/v1/tasks/{task_id}/events", headers=owner)).text
    summaries = [f for f in parse_lines(iter(events.splitlines())) if f.event == "memory_summary"]
    assert [frame.id for frame in summaries] == [str(summary["seq"])]


async def test_a_task_without_session_or_summary(client: AppClient) -> None:
    auth = await _admin(client)
    task_id = await _finished_task(client, auth, agent="chat", input="Say hello.")
    memory = await _memory(client, auth, task_id)
    result = (await client.get(f"/v1/tasks/{task_id}/result", headers=auth)).json()
    # The streamed tokens and the message that closes them are one assistant message.
    assert _turns(memory["messages"]) == [("user", "Say hello."), ("assistant", result["output"])]
    assert memory["session_id"] is None and memory["summary"] is None
    assert memory["truncated"] is False


async def test_only_the_owner_and_an_admin_may_look(client: AppClient) -> None:
    admin = await _admin(client)
    owner = await _key(client, admin, *OWNER_SCOPES)
    task_id = await _finished_task(client, owner, agent="keeper", input="What is 6*7?")
    expected = await _memory(client, owner, task_id)

    assert await _memory(client, admin, task_id) == expected  # admin: any task

    other = await _key(client, admin, *OWNER_SCOPES)
    for auth in (other, {}):
        response = await client.get(f"/v1/tasks/{task_id}/memory", headers=auth)
        if auth:
            assert_problem(response, 404, "task_not_found")  # never 403: ids cannot be probed
        else:
            assert_problem(response, 401, "unauthorized")
    no_scope = await _key(client, admin, "agents:run")
    assert_problem(
        await client.get(f"/v1/tasks/{task_id}/memory", headers=no_scope),
        403,
        "insufficient_scope",
    )
    for bad_id in ("not-a-task", uuid.uuid4().hex):
        response = await client.get(f"/v1/tasks/{bad_id}/memory", headers=admin)
        assert_problem(response, 404, "task_not_found")

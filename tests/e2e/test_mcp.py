"""MCP at /mcp against a real server process (Redis-backed, embedded worker), driven by the
`mcp` package's own client over streamable HTTP: tools, progress, cancel, elicitation, tasks,
and what an unauthenticated or foreign caller gets."""

from __future__ import annotations

import re
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.experimental import ExperimentalClientFeatures
from mcp.shared.context import RequestContext
from mcp.shared.exceptions import McpError

from tests.e2e.conftest import login
from tests.support.mcp_client import (
    Progress,
    answer_form,
    asked_field,
    bearer,
    mcp_session,
    text_of,
)
from tests.support.redis_server import RedisServer
from tests.support.server_process import PROTOCOLS_ON, ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("mcp")]

PUBLIC_URL = "https://agents.example.com"
ISSUER = "https://idp.example.com/realms/agents"
# 40 tokens at 20/s: a chat run lasts about two seconds, long enough to cancel mid-way.
ENV = {
    **PROTOCOLS_ON,
    "OFFLINE_TOKENS_PER_SECOND": "20",
    "OFFLINE_RESPONSE_TOKENS": "40",
    "MCP_EXPOSE_TOOLS": "true",
    "AGENTS": "tests.support.structured_agents:trip_planner",
    "PUBLIC_URL": PUBLIC_URL,
    "OIDC_ISSUER": ISSUER,
    "OIDC_AUDIENCE": "agent-service",
    "RATE_LIMIT_ENABLED": "false",
}
RUN_STARTED = re.compile(r"\[run ([0-9a-f]{32}) of (\S+) started\]")


@dataclass
class Api:
    server: ServerProcess
    token: str

    @property
    def mcp(self) -> str:
        return self.server.url + "/mcp"

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(self.server.url + path, headers=bearer(self.token), timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def finished_run(self, run_id: str, *, within: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            record = self.get(f"/v1/runs/{run_id}")
            if record["status"] in ("completed", "failed", "cancelled"):
                return record
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} still {record['status']} after {within} s")


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[Api]:
    redis_server.start()
    env = {**ENV, "REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"e2e-mcp-{uuid.uuid4()}:"}
    with ServerProcess(env=env) as server:
        yield Api(server, login(server.url))


def experimental(session: ClientSession) -> ExperimentalClientFeatures:
    # The SDK warns that its tasks API will move to an extension; protocol 2025-11-25 has it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return session.experimental


async def test_every_agent_is_a_tool_with_its_input_schema(api: Api) -> None:
    async with mcp_session(api.mcp, headers=bearer(api.token)) as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    agents = api.get("/v1/agents")["items"]
    assert {agent["name"] for agent in agents} <= listed.keys()
    for agent in agents:  # the schema GET /v1/agents shows is the tool's
        assert listed[agent["name"]].inputSchema == agent["input_schema"]
    assert listed["chat"].inputSchema["properties"]["input"]["type"] == "string"
    trip = listed["trip-planner"].inputSchema["properties"]["input"]
    assert trip["properties"]["stops"]["items"]["properties"]["nights"]["type"] == "integer"
    assert listed["chat"].execution is not None
    assert listed["chat"].execution.taskSupport == "optional"
    # MCP_EXPOSE_TOOLS: the registered tools too, with their own parameters.
    tools = {tool["name"]: tool for tool in api.get("/v1/tools")["items"]}
    assert listed["tool_calculator"].inputSchema == tools["calculator"]["parameters"]


async def test_a_call_streams_progress_and_is_one_of_our_runs(api: Api) -> None:
    progress = Progress()
    async with mcp_session(api.mcp, headers=bearer(api.token)) as session:
        result = await session.call_tool("chat", {"input": "hello mcp"}, progress_callback=progress)
    assert not result.isError
    assert result.structuredContent is not None
    output = result.structuredContent["output"]
    assert text_of(result) == output and "hello mcp" in output
    # Tokens arrived as progress notifications while the run went on, in order.
    values = [value for value, _ in progress.seen]
    assert len(values) > 10 and values == sorted(set(values))
    match = RUN_STARTED.search(progress.text)
    assert match is not None and match[1] == result.structuredContent["run_id"]
    assert output in progress.text.replace("[step 1 done]", "")
    record = api.get(f"/v1/runs/{match[1]}")  # the same record as every run's
    assert record["status"] == "completed" and record["output"] == output
    assert record["agent"] == "chat" and record["session_id"] is None  # no session kept


async def test_a_structured_agent_and_a_registered_tool_are_called(api: Api) -> None:
    trip = {"traveller": "Ada", "stops": [{"city": "Oslo", "nights": 2}]}
    async with mcp_session(api.mcp, headers=bearer(api.token)) as session:
        planned = await session.call_tool("trip-planner", {"input": trip})
        bad = await session.call_tool("trip-planner", {"input": {"traveller": "Ada"}})
        summed = await session.call_tool("tool_calculator", {"expression": "6*7"})
        unknown = await session.call_tool("nope", {"input": "x"})
    assert text_of(planned) == "Trip for Ada: Oslo x2 = 2 nights"
    assert bad.isError and "stops" in text_of(bad)
    assert not summed.isError and text_of(summed) == "42"
    assert unknown.isError and "nope" in text_of(unknown)


async def test_cancelling_a_call_cancels_its_run(api: Api) -> None:
    run_ids: list[str] = []
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if match := RUN_STARTED.search(message or ""):
            run_ids.append(match[1])
            started.set()

    failures: list[McpError] = []
    async with mcp_session(api.mcp, headers=bearer(api.token)) as session:

        async def call() -> None:
            try:
                await session.call_tool(
                    "chat", {"input": "long one"}, progress_callback=on_progress
                )
            except McpError as exc:
                failures.append(exc)

        began = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            with anyio.fail_after(10):
                await started.wait()
            # The client numbers its requests: initialize was 0, this call is 1.
            cancelled = types.CancelledNotification(
                params=types.CancelledNotificationParams(requestId=1, reason="user stopped")
            )
            await session.send_notification(types.ClientNotification(cancelled))
    assert [str(failure) for failure in failures] == ["Request cancelled"]
    record = api.finished_run(run_ids[0])
    assert record["status"] == "cancelled"
    assert time.monotonic() - began < 2  # well before the two seconds the run would take


async def test_an_agents_questions_are_elicited_from_the_client(api: Api) -> None:
    asked: list[types.ElicitRequestParams] = []

    async def elicit(
        context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(params)
        answer = asked_field(params)
        return answer_form(True if answer["type"] == "boolean" else answer["enum"][-1])

    async with mcp_session(api.mcp, headers=bearer(api.token), elicitation=elicit) as session:
        result = await session.call_tool("approval", {"input": "rotate the keys"})
    assert not result.isError, text_of(result)
    assert text_of(result).startswith("Approved at high priority.")
    first, second = (asked_field(params) for params in asked)
    assert first["enum"] == ["low", "normal", "high"] and second["type"] == "boolean"
    assert [params.message for params in asked][0] == "Which priority should this action have?"


async def test_a_question_without_elicitation_is_a_clear_tool_error(api: Api) -> None:
    async with mcp_session(api.mcp, headers=bearer(api.token)) as session:
        result = await session.call_tool("approval", {"input": "rotate the keys"})
    assert result.isError
    assert "does not support elicitation" in text_of(result)
    match = re.search(r"\(input_required_unsupported, run ([0-9a-f]{32})\)", text_of(result))
    assert match is not None, text_of(result)
    record = api.finished_run(match[1])
    assert record["agent"] == "approval" and record["status"] == "cancelled"


async def test_a_task_augmented_call_is_a_background_task(api: Api) -> None:
    progress = Progress()
    async with mcp_session(api.mcp, headers=bearer(api.token)) as session:
        tasks = experimental(session)
        created = await tasks.call_tool_as_task("chat", {"input": "as a task"})
        task_id = created.task.taskId
        assert created.task.status == "working"
        result = await session.send_request(
            types.ClientRequest(
                types.GetTaskPayloadRequest(
                    params=types.GetTaskPayloadRequestParams(taskId=task_id)
                )
            ),
            types.CallToolResult,
            progress_callback=progress,
        )
        status = await tasks.get_task(task_id)
        listed = await tasks.list_tasks()
    assert not result.isError and "as a task" in text_of(result)
    assert "as a task" in progress.text  # tasks/result streamed the task's tokens
    assert status.status == "completed"
    assert task_id in [task.taskId for task in listed.tasks]
    record = api.get(f"/v1/tasks/{task_id}")  # the MCP task is our task
    assert record["status"] == "completed"


async def test_a_task_asks_through_tasks_result_and_can_be_cancelled(api: Api) -> None:
    async def elicit(
        context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        answer = asked_field(params)
        return answer_form(True if answer["type"] == "boolean" else "low")

    async with mcp_session(api.mcp, headers=bearer(api.token), elicitation=elicit) as session:
        tasks = experimental(session)
        asking = await tasks.call_tool_as_task("approval", {"input": "archive"})
        answered = await tasks.get_task_result(asking.task.taskId, types.CallToolResult)
        doomed = await tasks.call_tool_as_task("chat", {"input": "never mind"})
        cancelled = await tasks.cancel_task(doomed.task.taskId)
        ended = await tasks.get_task_result(doomed.task.taskId, types.CallToolResult)
        final = await tasks.get_task(doomed.task.taskId)
        with pytest.raises(McpError, match="task_not_found"):
            await tasks.get_task(uuid.uuid4().hex)
    assert text_of(answered).startswith("Approved at low priority.")
    assert cancelled.taskId == doomed.task.taskId
    assert ended.isError and "cancelled" in text_of(ended)
    assert final.status == "cancelled"


def test_an_anonymous_or_bad_caller_gets_the_resource_metadata_challenge(api: Api) -> None:
    challenge = (
        f'Bearer realm="agent-service", '
        f'resource_metadata="{PUBLIC_URL}/.well-known/oauth-protected-resource"'
    )
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}
    anonymous = httpx.post(api.mcp, json=initialize, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == challenge
    forged = httpx.post(api.mcp, json=initialize, headers=bearer("not-a-token"), timeout=10)
    assert forged.status_code == 401
    assert forged.headers["www-authenticate"] == challenge
    elsewhere = httpx.get(api.server.url + "/v1/agents", headers=bearer("x"), timeout=10)
    assert elsewhere.headers["www-authenticate"] == 'Bearer realm="agent-service"'


def test_the_protected_resource_metadata_names_the_issuer_and_scopes(api: Api) -> None:
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ):
        response = httpx.get(api.server.url + path, timeout=10)
        assert response.status_code == 200
        assert response.json() == {
            "resource": f"{PUBLIC_URL}/mcp",
            "authorization_servers": [ISSUER],
            "scopes_supported": [
                "agents:run",
                "sessions:read",
                "sessions:write",
                "tasks:read",
                "tasks:write",
                "webhooks",
                "tenant:admin",
                "admin",
            ],
            "bearer_methods_supported": ["header"],
            "resource_name": "agent-service",
            "resource_documentation": f"{PUBLIC_URL}/docs",
        }


async def test_a_session_serves_only_its_principal_and_scopes_apply(api: Api) -> None:
    created = httpx.post(
        api.server.url + "/v1/auth/api-keys",
        json={"name": f"reader-{uuid.uuid4().hex[:6]}", "scopes": ["sessions:read"]},
        headers=bearer(api.token),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    reader = {"X-API-Key": created.json()["key"]}
    async with mcp_session(api.mcp, headers=reader) as session:
        refused = await session.call_tool("chat", {"input": "hi"})
    assert refused.isError and "agents:run" in text_of(refused)

    headers = {"Accept": "application/json, text/event-stream", **bearer(api.token)}
    opened = httpx.post(
        api.mcp,
        json={
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": types.LATEST_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        headers=headers,
        timeout=10,
    )
    session_id = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    stolen = httpx.post(
        api.mcp,
        json=listing,
        headers={**headers, **reader, "Authorization": "", "Mcp-Session-Id": session_id},
        timeout=10,
    )
    assert stolen.status_code == 404  # as if the session did not exist

"""Pydantic AI agents served through the AGENTS setting, over every route, in process.

The agents (tests/support/adapters/pydantic_ai_agents.py) run on the framework's own test
models; the cancel proof against a real socket is in tests/e2e/test_adapter_pydantic_ai_cancel.py.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic_ai import Agent, AgentRunResultEvent
from starlette.exceptions import StarletteDeprecationWarning

from app.agents.adapters import pydantic_ai as adapter
from app.agents.registry import as_agent
from app.main import create_app
from app.services import build_services
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, app_client
from tests.integration.test_auth_api import assert_problem
from tests.support.adapters import pydantic_ai_agents as agents
from tests.support.adapters.calls import bearer, payloads, sse_frames
from tests.support.fake_openai import FakeOpenAI, Status
from tests.support.sse import Frame

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Auth = dict[str, str]
MODULE = "tests.support.adapters.pydantic_ai_agents"
AGENTS = [
    f"{MODULE}:writer",  # no name=: served under its own name, "Writer Bot" -> writer-bot
    f"{MODULE}:unnamed",  # no name at all: pydantic-ai
    f"forecaster={MODULE}:weather",
    f"deployer={MODULE}:deployer",
    f"escalator={MODULE}:escalator",
    f"notes={MODULE}:notes",
    f"broken={MODULE}:broken",
    f"service-llm={MODULE}:service_llm",
]


@pytest.fixture
async def both(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[AppClient]:
    """The agents on both store backends (sessions keep framework state in either)."""
    async with app_client(
        make_settings(AGENTS=AGENTS, RATE_LIMIT_ENABLED=False, **store_backend)
    ) as c:
        yield c


@pytest.fixture
async def served(make_settings: SettingsFactory) -> AsyncIterator[AppClient]:
    async with app_client(make_settings(AGENTS=AGENTS, RATE_LIMIT_ENABLED=False)) as client:
        yield client


async def _invoke(client: httpx.AsyncClient, auth: Auth, agent: str, **body: Any) -> Any:
    response = await client.post(f"/v1/agents/{agent}/invoke", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def _stream(client: httpx.AsyncClient, auth: Auth, agent: str, text: str) -> list[Frame]:
    response = await client.post(f"/v1/agents/{agent}/stream", json={"input": text}, headers=auth)
    return sse_frames(response)


async def _until(probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 10
    while not done(value := await probe()):
        assert time.monotonic() < deadline, f"never happened; last seen: {value}"
        await asyncio.sleep(0.02)
    return value


async def test_invoke_returns_the_output_the_usage_the_model_reported_and_the_run(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    answer = await _invoke(served, auth, "writer-bot", input="Write a sentence")
    assert answer["output"] == "".join(agents.WRITER_CHUNKS)
    # The same agent run directly: the usage its model reported is the run's usage.
    async with agents.writer.run_stream_events("Write a sentence") as events:
        last = [event async for event in events][-1]
    assert isinstance(last, AgentRunResultEvent)
    direct = last.result.usage
    assert answer["usage"] == {
        "prompt_tokens": direct.input_tokens,
        "completion_tokens": direct.output_tokens,
        "total_tokens": direct.input_tokens + direct.output_tokens,
    }
    assert answer["usage"]["completion_tokens"] > 0
    run = (await served.get(f"/v1/runs/{answer['run_id']}", headers=auth)).json()
    assert run["agent"] == "writer-bot" and run["status"] == "completed"
    assert run["output"] == answer["output"] and run["usage"] == answer["usage"]
    assert run["steps_taken"] == 1


async def test_stream_sends_the_text_deltas_in_order_and_ends_with_the_full_output(
    served: AppClient,
) -> None:
    frames = await _stream(served, await bearer(served), "writer-bot", "Write a sentence")
    assert frames[0].event == "run_started" and frames[-1].event == "run_completed"
    assert [t["text"] for t in payloads(frames, "token")] == agents.WRITER_CHUNKS
    assert frames[-1].json["output"] == "".join(agents.WRITER_CHUNKS)
    assert [s["number"] for s in payloads(frames, "step")] == [1]


async def test_a_tool_call_and_its_result_are_events_with_matching_ids(served: AppClient) -> None:
    frames = await _stream(served, await bearer(served), "forecaster", "Weather in Paris?")
    (call,) = payloads(frames, "tool_call")
    (result,) = payloads(frames, "tool_result")
    assert call["id"] == result["id"] == "call-forecast-1"
    # The arguments arrived in pieces; the framework assembled and ran them.
    assert call["name"] == "forecast" and call["arguments"] == {"city": "Paris", "days": 2}
    assert result["output"] == "sunny in Paris for 2 days" and result["success"] is True
    kinds = [f.event for f in frames]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    # One step per model request: the tool call, then the answer.
    assert [(s["number"], s["success"]) for s in payloads(frames, "step")] == [(1, True), (2, True)]
    assert frames[-1].json["output"] == "Forecast: sunny in Paris for 2 days."


async def test_max_steps_counts_the_frameworks_model_requests(served: AppClient) -> None:
    response = await served.post(
        "/v1/agents/forecaster/invoke",
        json={"input": "Weather in Paris?", "max_steps": 1},
        headers=await bearer(served),
    )
    assert_problem(response, 422, "max_steps_exceeded")


async def _answered_over_sse(
    client: AppClient, agent: str, text: str, value: Any
) -> tuple[dict[str, Any], list[Frame]]:
    """Stream a run, answer its question with the input route; (the question, the frames)."""
    auth = await bearer(client)
    stream = asyncio.create_task(
        client.post(f"/v1/agents/{agent}/stream", json={"input": text}, headers=auth)
    )

    async def waiting() -> list[dict[str, Any]]:
        response = await client.get("/v1/runs?status=input_required", headers=auth)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    try:
        (run,) = await _until(waiting, lambda items: len(items) == 1)
        pending: dict[str, Any] = run["pending_input"]
        answered = await client.post(
            f"/v1/runs/{run['run_id']}/input",
            json={"request_id": pending["request_id"], "value": value},
            headers=auth,
        )
        assert answered.status_code == 202, answered.text
        frames = sse_frames(await asyncio.wait_for(stream, 10))
    finally:
        stream.cancel()
    return pending, frames


@pytest.mark.parametrize(
    ("approve", "output", "success"),
    [(True, "Result: api deployed", True), (False, "Result: The tool call was denied.", False)],
)
async def test_an_approval_is_asked_over_sse_and_answered_with_the_input_route(
    served: AppClient, approve: bool, output: str, success: bool
) -> None:
    pending, frames = await _answered_over_sse(served, "deployer", "deploy api", approve)
    assert pending["kind"] == "confirm"
    assert pending["prompt"] == 'Allow deploy {"service": "api"}?'
    kinds = [f.event for f in frames]
    assert kinds.index("tool_call") < kinds.index("input_required") < kinds.index("tool_result")
    (result,) = payloads(frames, "tool_result")
    assert result["id"] == "call-deploy-1" and result["success"] is success
    assert frames[-1].event == "run_completed" and frames[-1].json["output"] == output


async def test_a_call_deferred_to_the_outside_takes_a_humans_text_as_its_result(
    served: AppClient,
) -> None:
    pending, frames = await _answered_over_sse(served, "escalator", "Can we ship?", "yes")
    assert pending["kind"] == "text"
    assert pending["prompt"] == 'Give the result of ask_manager {"question": "Ship on Friday?"}.'
    (result,) = payloads(frames, "tool_result")
    assert result["id"] == "call-manager-1" and result["output"] == "yes"
    assert frames[-1].json["output"] == "The manager said: yes"


async def test_an_approval_nobody_answers_ends_the_run_with_input_timeout(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(AGENTS=AGENTS, INPUT_TIMEOUT_SECONDS=0.2)
    async with app_client(settings) as client:
        frames = await _stream(client, await bearer(client), "deployer", "deploy api")
    assert [f.event for f in frames][-2:] == ["input_required", "error"]
    assert frames[-1].json["code"] == "input_timeout"
    assert not payloads(frames, "tool_result")  # the tool never ran


async def test_an_agent_that_asks_cannot_be_invoked(served: AppClient) -> None:
    response = await served.post(
        "/v1/agents/deployer/invoke", json={"input": "deploy api"}, headers=await bearer(served)
    )
    assert_problem(response, 409, "input_required_unsupported")


@pytest.fixture
def socket_app(make_settings: SettingsFactory) -> Iterator[tuple[TestClient, Auth]]:
    settings = make_settings(AGENTS=AGENTS, RATE_LIMIT_ENABLED=False)
    with TestClient(create_app(settings, services=build_services(settings))) as client:
        token = client.post(
            "/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def test_an_approval_is_answered_over_the_websocket(socket_app: tuple[TestClient, Auth]) -> None:
    client, auth = socket_app
    with client.websocket_connect("/v1/agents/deployer/ws", headers=auth) as socket:
        socket.send_json({"type": "start", "input": "deploy billing"})
        seen = [socket.receive_json()]
        while seen[-1]["type"] != "input_required":
            seen.append(socket.receive_json())
        assert seen[-1]["kind"] == "confirm" and "billing" in seen[-1]["prompt"]
        socket.send_json({"type": "input", "request_id": seen[-1]["request_id"], "value": True})
        while seen[-1]["type"] not in {"run_completed", "error"}:
            seen.append(socket.receive_json())
    assert seen[-1]["type"] == "run_completed", seen[-1]
    assert seen[-1]["output"] == "Result: billing deployed"


async def test_an_approval_in_a_background_task_is_answered_with_the_task_input_route(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    submitted = await served.post(
        "/v1/tasks", json={"agent": "deployer", "input": "deploy search"}, headers=auth
    )
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]

    async def task() -> dict[str, Any]:
        body: dict[str, Any] = (await served.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        return body

    waiting = await _until(task, lambda t: t["status"] == "input_required")
    assert waiting["pending_input"]["kind"] == "confirm"
    answered = await served.post(
        f"/v1/tasks/{task_id}/input",
        json={"request_id": waiting["pending_input"]["request_id"], "value": True},
        headers=auth,
    )
    assert answered.status_code == 202, answered.text
    done = await _until(task, lambda t: t["status"] not in {"queued", "running", "input_required"})
    assert done["status"] == "completed", done
    result = (await served.get(f"/v1/tasks/{task_id}/result", headers=auth)).json()
    assert result["output"] == "Result: search deployed"


async def test_a_session_continues_from_the_agents_own_messages(both: AppClient) -> None:
    auth = await bearer(both)
    first = await _invoke(both, auth, "notes", input="remember blue")
    assert first["output"] == "Noted."
    again = await _invoke(
        both, auth, "notes", input="what did I say?", session_id=first["session_id"]
    )
    # The note is only in the earlier tool call's arguments: the framework's messages came back.
    assert again["output"] == "Notes: blue; earlier turns: 1"
    elsewhere = await _invoke(both, auth, "notes", input="what did I say?")
    assert elsewhere["output"] == "Notes: none; earlier turns: 0"


async def test_without_stored_messages_the_session_history_stands_in(both: AppClient) -> None:
    auth = await bearer(both)
    first = await _invoke(both, auth, "notes", input="remember green")
    await both.services.sessions.state.drop(first["session_id"])  # as when state expired
    again = await _invoke(
        both, auth, "notes", input="what did I say?", session_id=first["session_id"]
    )
    # The text turns are there; the tool call (kept only by the framework) is not.
    assert again["output"] == "Notes: none; earlier turns: 1"


async def test_a_tool_that_raises_is_an_agent_error(served: AppClient) -> None:
    auth = await bearer(served)
    frames = await _stream(served, auth, "broken", "go")
    assert payloads(frames, "tool_call")[0]["name"] == "explode"
    assert frames[-1].event == "error" and frames[-1].json["code"] == "agent_error"
    assert "exploded" not in frames[-1].data  # the exception's text stays in the log
    response = await served.post("/v1/agents/broken/invoke", json={"input": "go"}, headers=auth)
    assert_problem(response, 500, "agent_error")


async def test_names_come_from_the_agent_and_capabilities_from_its_tools(
    served: AppClient,
) -> None:
    listed = (await served.get("/v1/agents", headers=await bearer(served))).json()["items"]
    found = {item["name"]: item for item in listed}
    assert {"writer-bot", "pydantic-ai", "forecaster", "deployer"} <= set(found)
    assert found["writer-bot"]["description"] == "Writes one sentence, streamed word by word."
    assert found["writer-bot"]["capabilities"] == {
        "streaming": True,
        "human_input": False,
        "tools": False,
    }
    assert found["forecaster"]["capabilities"]["tools"] is True
    assert found["forecaster"]["capabilities"]["human_input"] is False
    assert found["deployer"]["capabilities"]["human_input"] is True
    unnamed = await _invoke(served, await bearer(served), "pydantic-ai", input="hi")
    assert unnamed["output"] == "unnamed answer"


def test_accepts_only_pydantic_ai_agents() -> None:
    assert adapter.accepts(agents.writer) and adapter.accepts(Agent(name="x"))
    for other in (object(), Agent, "agent", agents.forecast, agents.writer.model):
        assert not adapter.accepts(other)
    assert adapter.build(agents.writer, name="renamed").name == "renamed"
    assert adapter.build(Agent(name="  Über Agent!! "), name=None).name == "ber-agent"


async def test_an_agent_without_a_model_runs_on_the_services_llm(served: AppClient) -> None:
    auth = await bearer(served)
    body = {"input": "Tell me about caching", "store": False}
    first = await served.post("/v1/agents/service-llm/invoke", json=body, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json()["output"] and first.json()["usage"]["completion_tokens"] > 0
    # Through ctx.llm, so through our cache: the same request is answered from it.
    second = await served.post("/v1/agents/service-llm/invoke", json=body, headers=auth)
    assert second.headers["x-cache"] == "HIT" and second.json()["cached"] is True
    assert second.json()["output"] == first.json()["output"]


async def test_the_services_llm_sees_the_agents_tools_and_their_results(served: AppClient) -> None:
    frames = await _stream(served, await bearer(served), "service-llm", "What is 20 + 22?")
    (call,) = payloads(frames, "tool_call")
    (result,) = payloads(frames, "tool_result")
    assert call["name"] == "calculator" and call["arguments"] == {"expression": "20 + 22"}
    assert result["id"] == call["id"] and result["output"] == "42"
    # The offline model answers from the tool message the framework's history became.
    assert frames[-1].json["output"] == "The result is 42."


async def test_a_failure_of_the_agents_own_model_client_is_an_llm_error(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    with FakeOpenAI() as fake:
        fake.default = Status(401)  # not retried by the client
        served.services.agents.register(as_agent(agents.talker_for(fake.url), name=None))
        frames = await _stream(served, auth, "talker", "hello")
        response = await served.post("/v1/agents/talker/invoke", json={"input": "hi"}, headers=auth)
    error = frames[-1].json
    assert frames[-1].event == "error" and error["code"] == "llm_unauthorized"
    assert error["retryable"] is False and "HTTP 401" in error["message"]
    assert "scripted failure" not in frames[-1].data  # the provider's body stays in the log
    assert_problem(response, 502, "llm_unauthorized")

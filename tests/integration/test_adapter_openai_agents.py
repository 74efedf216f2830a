"""OpenAI Agents SDK agents served through the AGENTS setting, over every route, in process.

The agents (tests/support/adapters/openai_agents_agents.py) talk to tests/support/fake_openai.py
over real sockets, two ways: an Agent that names no model is answered by the service's LLM
(the openai provider pointed at the fake: route "service-llm"), and the same Agent given its
own SDK model object (OpenAIChatCompletionsModel pointed at the fake: route "own-model")
calls the fake itself.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from agents import Agent
from starlette.exceptions import StarletteDeprecationWarning

from app.agents.adapters import openai_agents as adapter
from app.agents.registry import as_agent
from app.core.config import Settings
from app.main import create_app
from app.services import build_services
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, app_client
from tests.integration.test_auth_api import assert_problem
from tests.support.adapters import openai_agents_agents as support
from tests.support.adapters.calls import bearer, payloads, sse_frames
from tests.support.fake_openai import FakeOpenAI, Slow, Text, ToolCalls
from tests.support.sse import Frame

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Auth = dict[str, str]
MODULE = "tests.support.adapters.openai_agents_agents"
AGENTS = [
    f"{MODULE}:assistant",  # no name=: "Support Desk" -> support-desk
    f"keeper={MODULE}:approver",
    f"breaker={MODULE}:failing",
    f"triage={MODULE}:triage",
    f"named={MODULE}:named_model",
    f"holder={MODULE}:holder",
]
ROUTES = ["service-llm", "own-model"]


def _add_call() -> ToolCalls:
    return ToolCalls([("call_add_1", "add", ['{"a": 2,', ' "b": 3}'])], 11, 9)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _settings(make_settings: SettingsFactory, fake: FakeOpenAI, **extra: Any) -> Settings:
    return make_settings(
        AGENTS=AGENTS,
        RATE_LIMIT_ENABLED=False,
        LLM_PROVIDER="openai",
        OPENAI_BASE_URL=fake.url,
        OPENAI_API_KEY="sk-test",
        OPENAI_MAX_RETRIES=0,
        **extra,
    )


def _serve_own_model(client: AppClient, fake: FakeOpenAI) -> None:
    """The assistant with its own SDK model, registered as an AGENTS entry would be."""
    client.services.agents.register(as_agent(support.own_model(fake.url), name=None))


@pytest.fixture
async def served(make_settings: SettingsFactory, fake: FakeOpenAI) -> AsyncIterator[AppClient]:
    async with app_client(_settings(make_settings, fake)) as client:
        _serve_own_model(client, fake)
        yield client


@pytest.fixture
async def both(
    make_settings: SettingsFactory, store_backend: dict[str, Any], fake: FakeOpenAI
) -> AsyncIterator[AppClient]:
    """The agents on both store backends (sessions keep the SDK's items in either)."""
    async with app_client(_settings(make_settings, fake, **store_backend)) as client:
        yield client


def _agent(route: str) -> str:
    return "support-desk" if route == "service-llm" else "own-model"


async def _stream(client: httpx.AsyncClient, auth: Auth, agent: str, text: str) -> list[Frame]:
    response = await client.post(f"/v1/agents/{agent}/stream", json={"input": text}, headers=auth)
    return sse_frames(response)


async def _until(probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 10
    while not done(value := await probe()):
        assert time.monotonic() < deadline, f"never happened; last seen: {value}"
        await asyncio.sleep(0.02)
    return value


@pytest.mark.parametrize("route", ROUTES)
async def test_invoke_answers_with_the_output_the_reported_usage_and_the_run(
    served: AppClient, fake: FakeOpenAI, route: str
) -> None:
    fake.script(_add_call(), Text(["The sum", " is 5."], prompt_tokens=20, completion_tokens=4))
    auth = await bearer(served)
    response = await served.post(
        f"/v1/agents/{_agent(route)}/invoke", json={"input": "What is 2+3?"}, headers=auth
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["output"] == "The sum is 5."
    # Both model calls, as the fake reported them: 11+9 for the tool call, 20+4 for the answer.
    assert answer["usage"] == {"prompt_tokens": 31, "completion_tokens": 13, "total_tokens": 44}
    assert answer["metadata"]["llm_calls"] == 2 and answer["metadata"]["steps"] == 1
    run = (await served.get(f"/v1/runs/{answer['run_id']}", headers=auth)).json()
    assert run["agent"] == _agent(route) and run["status"] == "completed"
    assert run["output"] == answer["output"] and run["usage"] == answer["usage"]
    # What the model was sent: the instructions, the question, the tool.
    first = fake.requests[0].body
    assert first["messages"][0] == {
        "role": "system",
        "content": "You help with arithmetic. Use the add tool.",
    }
    assert first["messages"][1]["content"] == "What is 2+3?"
    assert [tool["function"]["name"] for tool in first["tools"]] == ["add"]
    assert response.headers["x-cache"] == "MISS" and answer["cached"] is False


async def test_calls_through_the_service_llm_use_its_cache(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(_add_call(), Text(["The sum", " is 5."]))
    auth = await bearer(served)
    body = {"input": "What is 2+3?"}
    first = await served.post("/v1/agents/support-desk/invoke", json=body, headers=auth)
    again = await served.post("/v1/agents/support-desk/invoke", json=body, headers=auth)
    assert again.status_code == 200, again.text
    assert again.json()["output"] == first.json()["output"] == "The sum is 5."
    assert again.headers["x-cache"] == "HIT" and again.json()["cached"] is True
    assert again.json()["usage"] == first.json()["usage"]
    assert fake.request_count == 2  # the second run's two calls were answered from the cache


async def test_a_named_model_is_sent_to_the_service_llm_by_its_name(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(Text(["Short."]))
    answer = (
        await served.post(
            "/v1/agents/named/invoke", json={"input": "hi"}, headers=await bearer(served)
        )
    ).json()
    assert answer["output"] == "Short." and fake.requests[0].body["model"] == "gpt-named"


@pytest.mark.parametrize("route", ROUTES)
async def test_stream_sends_the_text_deltas_in_order_and_ends_with_the_full_output(
    served: AppClient, fake: FakeOpenAI, route: str
) -> None:
    chunks = ["Hel", "lo", " wor", "ld", "!"]
    fake.script(Text(chunks))
    frames = await _stream(served, await bearer(served), _agent(route), "Say hello")
    assert frames[0].event == "run_started" and frames[-1].event == "run_completed"
    assert [t["text"] for t in payloads(frames, "token")] == chunks
    assert frames[-1].json["output"] == "Hello world!"
    assert [s["number"] for s in payloads(frames, "step")] == [1]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_tool_call_and_its_result_are_events_with_matching_ids(
    served: AppClient, fake: FakeOpenAI, route: str
) -> None:
    fake.script(_add_call(), Text(["The sum", " is 5."]))
    frames = await _stream(served, await bearer(served), _agent(route), "What is 2+3?")
    (call,) = payloads(frames, "tool_call")
    (result,) = payloads(frames, "tool_result")
    # The arguments arrived in pieces; the SDK assembled them and ran the tool.
    assert call == {**call, "id": "call_add_1", "name": "add", "arguments": {"a": 2, "b": 3}}
    assert result == {**result, "id": "call_add_1", "output": "5", "success": True}
    kinds = [f.event for f in frames]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    # The model saw the tool's output as the SDK sent it.
    sent = fake.requests[1].body["messages"]
    assert sent[-1] == {**sent[-1], "role": "tool", "tool_call_id": "call_add_1", "content": "5"}


async def test_a_handoff_is_a_new_step_with_a_log_naming_both_agents(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(
        ToolCalls([("call_handoff_1", "transfer_to_billing", ["{}"])]),
        Text(["Your invoice", " is paid."]),
    )
    frames = await _stream(served, await bearer(served), "triage", "Is my invoice paid?")
    assert [s["number"] for s in payloads(frames, "step")] == [1, 2]
    (handoff,) = payloads(frames, "log")
    assert handoff["data"] == {"agent": "Billing", "previous": "Triage"}
    kinds = [f.event for f in frames]
    assert kinds.index("step") < kinds.index("log") < kinds.index("token")
    assert frames[-1].json["output"] == "Your invoice is paid."
    # The second call was the billing agent's: its instructions, no handoff tool left.
    second = fake.requests[1].body
    assert second["messages"][0]["content"] == "You answer billing questions."
    assert "tools" not in second


async def test_max_steps_is_the_sdks_turn_limit(served: AppClient, fake: FakeOpenAI) -> None:
    fake.script(_add_call())
    response = await served.post(
        "/v1/agents/support-desk/invoke",
        json={"input": "What is 2+3?", "max_steps": 1},
        headers=await bearer(served),
    )
    assert_problem(response, 422, "max_steps_exceeded")
    assert fake.request_count == 1


def _approval_replies() -> tuple[ToolCalls, Text]:
    return ToolCalls([("call_delete_1", "delete_file", ['{"path": "/tmp/a.txt"}'])]), Text(
        ["Done."]
    )


@pytest.mark.parametrize("approve", [True, False])
async def test_a_tool_approval_is_asked_over_sse_and_answered_with_the_input_route(
    served: AppClient, fake: FakeOpenAI, approve: bool
) -> None:
    fake.script(*_approval_replies())
    support.DELETED.clear()
    auth = await bearer(served)
    stream = asyncio.create_task(
        served.post("/v1/agents/keeper/stream", json={"input": "delete a.txt"}, headers=auth)
    )

    async def waiting() -> list[dict[str, Any]]:
        response = await served.get("/v1/runs?status=input_required", headers=auth)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    try:
        (run,) = await _until(waiting, lambda items: len(items) == 1)
        pending = run["pending_input"]
        assert pending["kind"] == "confirm"
        assert pending["prompt"] == (
            'File Keeper wants to call delete_file({"path": "/tmp/a.txt"}). Allow it?'
        )
        answered = await served.post(
            f"/v1/runs/{run['run_id']}/input",
            json={"request_id": pending["request_id"], "value": approve},
            headers=auth,
        )
        assert answered.status_code == 202, answered.text
        frames = sse_frames(await asyncio.wait_for(stream, 10))
    finally:
        stream.cancel()
    kinds = [f.event for f in frames]
    assert kinds.index("tool_call") < kinds.index("input_required") < kinds.index("tool_result")
    (result,) = payloads(frames, "tool_result")
    assert result["id"] == "call_delete_1" and result["success"] is approve
    assert support.DELETED == (["/tmp/a.txt"] if approve else [])
    tool_output = fake.requests[1].body["messages"][-1]
    assert tool_output["tool_call_id"] == "call_delete_1"
    assert (tool_output["content"] == "deleted /tmp/a.txt") is approve
    assert frames[-1].event == "run_completed" and frames[-1].json["output"] == "Done."


@pytest.fixture
def socket_app(
    make_settings: SettingsFactory, fake: FakeOpenAI
) -> Iterator[tuple[TestClient, Auth]]:
    settings = _settings(make_settings, fake)
    with TestClient(create_app(settings, services=build_services(settings))) as client:
        token = client.post(
            "/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def test_a_tool_approval_is_answered_over_the_websocket(
    socket_app: tuple[TestClient, Auth], fake: FakeOpenAI
) -> None:
    fake.script(*_approval_replies())
    support.DELETED.clear()
    client, auth = socket_app
    with client.websocket_connect("/v1/agents/keeper/ws", headers=auth) as socket:
        socket.send_json({"type": "start", "input": "delete a.txt"})
        seen = [socket.receive_json()]
        while seen[-1]["type"] != "input_required":
            seen.append(socket.receive_json())
        assert seen[-1]["kind"] == "confirm" and "delete_file" in seen[-1]["prompt"]
        socket.send_json({"type": "input", "request_id": seen[-1]["request_id"], "value": True})
        while seen[-1]["type"] not in ("run_completed", "error"):
            seen.append(socket.receive_json())
    assert seen[-1]["type"] == "run_completed" and seen[-1]["output"] == "Done."
    (result,) = [event for event in seen if event["type"] == "tool_result"]
    assert result["output"] == "deleted /tmp/a.txt" and support.DELETED == ["/tmp/a.txt"]


async def test_a_tool_approval_is_answered_for_a_background_task(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(*_approval_replies())
    support.DELETED.clear()
    auth = await bearer(served)
    submitted = await served.post(
        "/v1/tasks", json={"agent": "keeper", "input": "delete a.txt"}, headers=auth
    )
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]

    async def task() -> dict[str, Any]:
        data: dict[str, Any] = (await served.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        return data

    waiting = await _until(task, lambda t: t["status"] == "input_required")
    assert waiting["pending_input"]["kind"] == "confirm"
    answered = await served.post(
        f"/v1/tasks/{task_id}/input",
        json={"request_id": waiting["pending_input"]["request_id"], "value": True},
        headers=auth,
    )
    assert answered.status_code == 202, answered.text

    async def result() -> httpx.Response:
        return await served.get(f"/v1/tasks/{task_id}/result", headers=auth)

    done = await _until(result, lambda r: r.status_code == 200)
    assert done.json()["output"] == "Done." and support.DELETED == ["/tmp/a.txt"]


async def test_a_paused_task_holds_before_the_sdks_next_model_call(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(ToolCalls([("call_hold_1", "hold", ["{}"])]), Text(["Resumed."]))
    support.HELD.clear()
    support.GATE.clear()
    auth = await bearer(served)
    submitted = await served.post(
        "/v1/tasks", json={"agent": "holder", "input": "hold on"}, headers=auth
    )
    task_id = submitted.json()["task_id"]

    async def task() -> dict[str, Any]:
        data: dict[str, Any] = (await served.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        return data

    async def control(action: str) -> None:
        response = await served.post(
            f"/v1/tasks/{task_id}/control", json={"action": action}, headers=auth
        )
        assert response.status_code == 202, response.text

    try:
        assert await asyncio.to_thread(support.HELD.wait, 10)  # the run is inside the tool
        await control("pause")
    finally:
        support.GATE.set()  # the tool returns; the SDK's next step is a model call
    await _until(task, lambda t: t["status"] == "paused")
    assert fake.request_count == 1  # held before the second model call
    await control("resume")

    async def result() -> httpx.Response:
        return await served.get(f"/v1/tasks/{task_id}/result", headers=auth)

    done = await _until(result, lambda r: r.status_code == 200)
    assert done.json()["output"] == "Resumed." and fake.request_count == 2


async def test_invoke_of_an_agent_that_asks_for_approval_is_refused(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(*_approval_replies())
    support.DELETED.clear()
    response = await served.post(
        "/v1/agents/keeper/invoke", json={"input": "delete a.txt"}, headers=await bearer(served)
    )
    assert_problem(response, 409, "input_required_unsupported")
    assert support.DELETED == []


async def test_a_session_continues_the_sdk_conversation_across_runs(
    both: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(Text(["Hello", " Ada."]), Text(["You are", " Ada."]), Text(["Hi."]))
    auth = await bearer(both)
    session = (await both.post("/v1/sessions", json={"agent": "support-desk"}, headers=auth)).json()
    for text in ("My name is Ada.", "What is my name?"):
        response = await both.post(
            "/v1/agents/support-desk/invoke",
            json={"input": text, "session_id": session["id"]},
            headers=auth,
        )
        assert response.status_code == 200, response.text
    second = [(m["role"], m["content"]) for m in fake.requests[1].body["messages"]]
    assert second[1:] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    assert response.json()["output"] == "You are Ada."
    # The SDK's items are kept in the session's framework state, in this backend.
    kept = await both.services.sessions.state.load(session["id"], "openai_agents")
    assert kept is not None and b"What is my name?" in kept
    # A run without a session starts from nothing.
    alone = await both.post(
        "/v1/agents/support-desk/invoke", json={"input": "Who am I?", "store": False}, headers=auth
    )
    assert alone.status_code == 200, alone.text
    third = [(m["role"], m["content"]) for m in fake.requests[2].body["messages"]]
    assert third[1:] == [("user", "Who am I?")]


async def test_a_session_without_sdk_state_starts_from_its_messages(
    served: AppClient, fake: FakeOpenAI
) -> None:
    fake.script(Text(["Hello", " Ada."]), Text(["You are", " Ada."]))
    auth = await bearer(served)
    first = await served.post(
        "/v1/agents/support-desk/invoke", json={"input": "My name is Ada."}, headers=auth
    )
    session_id = first.json()["session_id"]
    await served.services.sessions.state.drop(session_id)  # as if its state had expired
    second = await served.post(
        "/v1/agents/support-desk/invoke",
        json={"input": "What is my name?", "session_id": session_id},
        headers=auth,
    )
    assert second.status_code == 200, second.text
    sent = [(m["role"], m["content"]) for m in fake.requests[1].body["messages"]]
    assert sent[1:] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]


@pytest.mark.parametrize("route", ROUTES)
async def test_cancel_stops_the_sdk_run_and_closes_its_model_stream(
    served: AppClient, fake: FakeOpenAI, route: str
) -> None:
    fake.default = Slow(interval=0.05, duration=20)
    auth = await bearer(served)
    stream = asyncio.create_task(
        served.post(
            f"/v1/agents/{_agent(route)}/stream", json={"input": "talk forever"}, headers=auth
        )
    )

    async def running() -> list[dict[str, Any]]:
        response = await served.get("/v1/runs?status=running", headers=auth)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    try:
        (run,) = await _until(running, lambda items: len(items) == 1)

        async def requests() -> int:
            return fake.request_count

        await _until(requests, lambda count: count == 1)
        await asyncio.sleep(0.2)  # a few chunks flow before the cancel
        assert not fake.disconnected.is_set()
        cancelled_at = time.monotonic()
        cancel = await served.post(f"/v1/runs/{run['run_id']}/cancel", headers=auth)
        assert cancel.status_code == 202, cancel.text
        frames = sse_frames(await asyncio.wait_for(stream, 10))
    finally:
        stream.cancel()
    assert await asyncio.to_thread(fake.disconnected.wait, 2), "the model stream stayed open"
    assert fake.disconnected_at is not None and fake.disconnected_at - cancelled_at < 1.0
    assert frames[-1].event == "error" and frames[-1].json["code"] == "cancelled"
    assert any(t["text"].startswith("tick") for t in payloads(frames, "token"))
    assert fake.request_count == 1


async def test_a_tool_that_raises_is_an_agent_error(served: AppClient, fake: FakeOpenAI) -> None:
    explode = ToolCalls([("call_boom_1", "explode", ['{"reason": "boom"}'])])
    fake.script(explode, explode)
    auth = await bearer(served)
    frames = await _stream(served, auth, "breaker", "Break it")
    assert frames[-1].event == "error" and frames[-1].json["code"] == "agent_error"
    assert "boom" not in frames[-1].json["message"]  # the exception text stays inside
    response = await served.post("/v1/agents/breaker/invoke", json={"input": "x"}, headers=auth)
    assert_problem(response, 500, "agent_error")


async def test_the_agents_are_listed_with_derived_names_and_capabilities(
    served: AppClient,
) -> None:
    listed = (await served.get("/v1/agents", headers=await bearer(served))).json()["items"]
    found = {item["name"]: item for item in listed}
    assert found["support-desk"]["capabilities"] == {
        "streaming": True,
        "human_input": False,
        "tools": True,
    }
    assert found["keeper"]["capabilities"]["human_input"] is True
    assert found["triage"]["capabilities"] == {
        "streaming": True,
        "human_input": False,
        "tools": False,
    }
    assert found["support-desk"]["description"] == "You help with arithmetic. Use the add tool."
    assert found["own-model"]["input_schema"]["required"] == ["input"]


def test_the_adapter_takes_sdk_agents_only() -> None:
    assert adapter.accepts(support.assistant) and adapter.accepts(support.billing)
    assert not adapter.accepts(object()) and not adapter.accepts(support.add)
    assert not adapter.accepts(Agent)  # the class, not an agent
    assert adapter.build(support.assistant, name=None).name == "support-desk"
    assert adapter.build(support.assistant, name="desk").name == "desk"
    nameless = support.assistant.clone(name="  ***  ")
    assert adapter.build(nameless, name=None).name == "openai-agent"


# -- the example in examples/openai_agents ---------------------------------------------------


async def test_the_example_runs_on_the_offline_model(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        RATE_LIMIT_ENABLED=False, AGENTS=["support=examples.openai_agents.agent:support"]
    )
    async with app_client(settings) as client:
        auth = await bearer(client)
        frames = await _stream(client, auth, "support", "What is 12*(3+4)?")
        (call,) = payloads(frames, "tool_call")
        assert call["name"] == "calculator" and call["arguments"] == {"expression": "12*(3+4)"}
        assert payloads(frames, "tool_result")[0]["output"] == "84"
        assert frames[-1].event == "run_completed" and "84" in frames[-1].json["output"]
        listed = (await client.get("/v1/agents/support", headers=auth)).json()
        assert listed["capabilities"]["human_input"] is True  # Billing's refund tool

"""LlamaIndex workflows served through the AGENTS setting, over every route, in process.

The workflows (tests/support/adapters/llamaindex_agents.py) are agent workflows on a scripted
function-calling model (the framework's MockFunctionCallingLLM, no network) and plain
workflows; the proof that a client leaving closes the upstream socket, through a real
server process, is tests/e2e/test_adapter_llamaindex_cancel.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from starlette.exceptions import StarletteDeprecationWarning

from app.agents.adapters import llamaindex as adapter
from app.agents.adapters.llamaindex_session import STATE_NAME
from app.main import create_app
from app.services import build_services
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, app_client
from tests.integration.test_auth_api import assert_problem
from tests.support.adapters import llamaindex_agents as flows
from tests.support.adapters.calls import bearer, payloads, sse_frames
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.sse import Frame

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Auth = dict[str, str]
MODULE = "tests.support.adapters.llamaindex_agents"
AGENTS = [
    f"{MODULE}:calculator",  # no name=: an agent workflow's own name
    f"{MODULE}:deployer",
    f"{MODULE}:notes",  # no name=: the class name, NotesFlow -> notes-flow
    f"{MODULE}:approval",
    f"{MODULE}:broken",
    f"{MODULE}:upstream",
    f"memo={MODULE}:notes",  # the same workflow under a name of our choosing
]
TEN = flows.PROMPT_TOKENS_PER_MESSAGE


@pytest.fixture
async def both(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[AppClient]:
    """The workflows on both store backends (a session keeps the workflow context in either)."""
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


async def _until(
    probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str, timeout: float = 10
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what} never happened; last seen: {value}"
        await asyncio.sleep(0.02)


async def _live_run(client: httpx.AsyncClient, auth: Auth, status: str) -> dict[str, Any]:
    async def listed() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await client.get(f"/v1/runs?status={status}", headers=auth)
        ).json()["items"]
        return items

    found: list[dict[str, Any]] = await _until(listed, lambda items: len(items) == 1, status)
    return found[0]


# -- invoke, stream, tools --------------------------------------------------------------------


async def test_invoke_returns_the_answer_the_models_usage_and_the_run_id(served: AppClient) -> None:
    auth = await bearer(served)
    answer = await _invoke(served, auth, "calculator", input="Hello there")
    assert answer["output"] == "You said: Hello there."
    # The scripted model reported 10 prompt tokens per message (system + user) and one
    # completion token per streamed chunk ("You ", "said: ", "Hello ", "there.").
    assert answer["usage"] == {"prompt_tokens": 2 * TEN, "completion_tokens": 4, "total_tokens": 24}
    run = (await served.get(f"/v1/runs/{answer['run_id']}", headers=auth)).json()
    assert run["agent"] == "calculator" and run["status"] == "completed"
    assert run["output"] == answer["output"] and run["usage"] == answer["usage"]
    assert run["session_id"] == answer["session_id"]
    assert run["steps_taken"] == 2  # AgentInput before the model call, AgentOutput after it


async def test_a_stream_carries_the_models_deltas_in_order_and_ends_with_the_text(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    frames = await _stream(served, auth, "calculator", "Tell me a story")
    tokens = [t["text"] for t in payloads(frames, "token")]
    assert tokens == ["You ", "said: ", "Tell ", "me ", "a ", "story."]
    assert frames[-1].event == "run_completed"
    assert frames[-1].json["output"] == "".join(tokens) == "You said: Tell me a story."
    # AgentInput before the model call and AgentOutput after it are the steps.
    events = [f.event for f in frames]
    assert events.index("step") < events.index("token") < events.index("run_completed")
    assert [s["number"] for s in payloads(frames, "step")] == [1, 2]


async def test_a_tool_call_and_its_result_are_events_with_matching_ids(served: AppClient) -> None:
    auth = await bearer(served)
    frames = await _stream(served, auth, "calculator", "Please add 2 and 40")
    (call,) = payloads(frames, "tool_call")
    (result,) = payloads(frames, "tool_result")
    assert call["name"] == "add" and call["arguments"] == {"a": 2, "b": 40}
    assert result["id"] == call["id"] and result["output"] == "42" and result["success"] is True
    events = [f.event for f in frames]
    assert events.index("tool_call") < events.index("tool_result") < events.index("token")
    assert frames[-1].json["output"] == "The tool said 42."
    # Two model calls: the tool call (3 tokens), then the answer over 4 messages (4 chunks).
    assert frames[-1].json["usage"] == {
        "prompt_tokens": 2 * TEN + 4 * TEN,
        "completion_tokens": 3 + 4,
        "total_tokens": 67,
    }
    steps = [s["number"] for s in payloads(frames, "step")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 4


async def test_a_plain_workflows_own_events_are_tokens_and_steps(served: AppClient) -> None:
    auth = await bearer(served)
    frames = await _stream(served, auth, "notes-flow", "buy milk")
    assert [f.event for f in frames[:3]] == ["run_started", "step", "token"]  # Progress, TextDelta
    assert "".join(t["text"] for t in payloads(frames, "token")) == "Notes: buy milk."
    assert frames[-1].event == "run_completed" and frames[-1].json["output"] == "Notes: buy milk."


# -- human input ------------------------------------------------------------------------------


async def test_a_tool_waiting_for_a_human_is_answered_over_sse_and_the_input_route(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    stream = asyncio.create_task(
        served.post("/v1/agents/deployer/stream", json={"input": "deploy web"}, headers=auth)
    )
    try:
        run = await _live_run(served, auth, "input_required")
        question = run["pending_input"]
        assert question["prompt"] == "Deploy web? (yes/no)" and question["kind"] == "text"
        answered = await served.post(
            f"/v1/runs/{run['run_id']}/input",
            json={"request_id": question["request_id"], "value": "yes"},
            headers=auth,
        )
        assert answered.status_code == 202, answered.text
        frames = sse_frames(await asyncio.wait_for(stream, 10))
    finally:
        stream.cancel()
    (asked,) = payloads(frames, "input_required")
    assert asked["request_id"] == question["request_id"]
    # The framework replays the waiting tool once answered; the call is announced once.
    (call,) = payloads(frames, "tool_call")
    (result,) = payloads(frames, "tool_result")
    assert call["name"] == "confirm_deploy" and call["arguments"] == {"service": "web"}
    assert result["id"] == call["id"] and result["output"] == "deployed web"
    assert frames[-1].event == "run_completed"
    assert frames[-1].json["output"] == "The tool said deployed web."


@pytest.fixture
def socket_app(make_settings: SettingsFactory) -> Iterator[tuple[TestClient, Auth]]:
    settings = make_settings(AGENTS=AGENTS, RATE_LIMIT_ENABLED=False)
    with TestClient(create_app(settings, services=build_services(settings))) as client:
        token = client.post(
            "/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def test_a_workflows_question_is_answered_over_the_websocket(
    socket_app: tuple[TestClient, Auth],
) -> None:
    client, auth = socket_app
    with client.websocket_connect("/v1/agents/approval-flow/ws", headers=auth) as socket:
        socket.send_json({"type": "start", "input": "release 1.2"})
        seen = [socket.receive_json()]
        while seen[-1]["type"] != "input_required":
            seen.append(socket.receive_json())
        assert seen[-1]["prompt"] == "Approve release 1.2? (yes/no)"
        socket.send_json({"type": "input", "request_id": seen[-1]["request_id"], "value": "yes"})
        while seen[-1]["type"] not in {"run_completed", "error"}:
            seen.append(socket.receive_json())
    assert seen[-1]["type"] == "run_completed", seen[-1]
    assert seen[-1]["output"] == "Approved: release 1.2"


async def test_a_background_task_asks_and_goes_on_with_the_answer(served: AppClient) -> None:
    auth = await bearer(served)
    submitted = await served.post(
        "/v1/tasks", json={"agent": "approval-flow", "input": "the migration"}, headers=auth
    )
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]

    async def task() -> dict[str, Any]:
        body: dict[str, Any] = (await served.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        return body

    waiting = await _until(task, lambda t: t["status"] == "input_required", "the question")
    assert waiting["pending_input"]["prompt"] == "Approve the migration? (yes/no)"
    answered = await served.post(
        f"/v1/tasks/{task_id}/input",
        json={"request_id": waiting["pending_input"]["request_id"], "value": "no"},
        headers=auth,
    )
    assert answered.status_code == 202, answered.text
    done = await _until(task, lambda t: t["status"] not in {"input_required", "running"}, "end")
    assert done["status"] == "completed", done
    result = (await served.get(f"/v1/tasks/{task_id}/result", headers=auth)).json()
    assert result["output"] == "Declined: the migration"


# -- sessions ---------------------------------------------------------------------------------


async def test_an_agent_workflow_remembers_the_session_through_its_saved_context(
    both: AppClient,
) -> None:
    auth = await bearer(both)
    first = await _invoke(both, auth, "calculator", input="My name is Alice")
    session = first["session_id"]
    second = await _invoke(both, auth, "calculator", input="Who am I?", session_id=session)
    assert second["output"] == "You said: Who am I?. Before that: My name is Alice."
    # The model got the first exchange back: system, user, assistant, user.
    assert second["usage"]["prompt_tokens"] == 4 * TEN
    elsewhere = await _invoke(both, auth, "calculator", input="Who am I?")
    assert elsewhere["output"] == "You said: Who am I?."
    stateless = await _invoke(both, auth, "calculator", input="Who am I?", store=False)
    assert stateless["output"] == "You said: Who am I?." and stateless["session_id"] is None


async def test_a_plain_workflows_store_carries_over_to_the_next_run_of_the_session(
    both: AppClient,
) -> None:
    auth = await bearer(both)
    first = await _invoke(both, auth, "notes-flow", input="buy milk")
    second = await _invoke(
        both, auth, "notes-flow", input="call Bob", session_id=first["session_id"]
    )
    assert second["output"] == "Notes: buy milk; call Bob."
    saved = await both.services.sessions.state.load(first["session_id"], STATE_NAME)
    assert saved is not None and b"call Bob" in saved


async def test_a_saved_context_that_no_longer_fits_starts_afresh_with_a_warning(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    state = served.services.sessions.state
    first = await _invoke(served, auth, "notes-flow", input="buy milk")
    session = first["session_id"]
    saved = json.loads(await state.load(session, STATE_NAME) or b"")
    # Unreadable as a whole (the framework refuses the payload), and a context that reads
    # but whose store the workflow cannot decode (as after a change of its state type).
    unreadable = {"version": 1}
    undecodable = {**saved, "context": {**saved["context"], "state": {"state_data": 5}}}
    for payload, why in ((unreadable, "could not be restored"), (undecodable, "does not fit")):
        await state.save(session, STATE_NAME, json.dumps(payload).encode())
        response = await served.post(
            "/v1/agents/notes-flow/stream",
            json={"input": "call Bob", "session_id": session},
            headers=auth,
        )
        frames = sse_frames(response)
        (warning,) = payloads(frames, "log")
        assert warning["level"] == "warning" and why in warning["message"]
        assert frames[-1].json["output"] == "Notes: call Bob."


# -- cancel and failure -----------------------------------------------------------------------


async def test_cancel_stops_the_workflow_and_closes_its_upstream_stream_within_a_second(
    served: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = await bearer(served)
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.05, duration=20)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        stream = asyncio.create_task(
            served.post("/v1/agents/upstream-flow/stream", json={"input": "go on"}, headers=auth)
        )
        try:
            run = await _live_run(served, auth, "running")

            async def upstream_calls() -> int:
                return fake.request_count

            await _until(upstream_calls, lambda calls: calls == 1, "the upstream call")
            assert not fake.disconnected.is_set()
            cancelled_at = time.monotonic()
            cancelled = await served.post(f"/v1/runs/{run['run_id']}/cancel", headers=auth)
            assert cancelled.status_code == 202, cancelled.text
            assert await asyncio.to_thread(fake.disconnected.wait, 2), "upstream never closed"
            frames = sse_frames(await asyncio.wait_for(stream, 10))
        finally:
            stream.cancel()
    assert fake.disconnected_at is not None and fake.disconnected_at - cancelled_at < 1.0
    assert frames[-1].event == "error" and frames[-1].json["code"] == "cancelled"


async def test_a_failing_step_is_an_agent_error_on_the_stream_and_a_problem_on_invoke(
    served: AppClient,
) -> None:
    auth = await bearer(served)
    frames = await _stream(served, auth, "broken-flow", "anything")
    # What the step streamed before it raised still reached the client.
    assert [t["text"] for t in payloads(frames, "token")] == ["Starting "]
    assert frames[-1].event == "error" and frames[-1].json["code"] == "agent_error"
    response = await served.post(
        "/v1/agents/broken-flow/invoke", json={"input": "anything"}, headers=auth
    )
    assert_problem(response, 500, "agent_error")


# -- names ------------------------------------------------------------------------------------


async def test_names_come_from_the_workflow_unless_the_entry_gives_one(served: AppClient) -> None:
    auth = await bearer(served)
    listed = (await served.get("/v1/agents", headers=auth)).json()["items"]
    by_name = {item["name"]: item for item in listed}
    assert {"calculator", "deployer", "notes-flow", "approval-flow", "memo"} <= by_name.keys()
    assert by_name["notes-flow"]["description"].startswith("Keeps a session's notes")
    assert by_name["calculator"]["capabilities"]["tools"] is True
    assert by_name["approval-flow"]["capabilities"]["human_input"] is True
    memo = await _invoke(served, auth, "memo", input="water plants")
    assert memo["output"] == "Notes: water plants."


def test_accepts_workflow_instances_only_and_derives_names() -> None:
    assert adapter.accepts(flows.notes) and adapter.accepts(flows.calculator)
    for other in (object(), flows.NotesFlow, "notes", flows.ScriptedLLM()):
        assert not adapter.accepts(other)
    assert adapter.default_name(flows.NotesFlow()) == "notes-flow"
    assert adapter.default_name(flows.calculator) == "calculator"
    unnamed = FunctionAgent(name="???", tools=[flows.add], llm=flows.ScriptedLLM())
    assert adapter.default_name(unnamed) == "function-agent"
    assert adapter.build(flows.notes, name="jot").name == "jot"

"""LangGraph graphs served through AGENTS, driven through the real routes (in-process app,
real LangGraph, a rule-based langchain_core chat model: tests/support/adapters/).

Streams are read whole (ASGITransport answers when the stream ends), so a test that must
act mid-run drives the stream in a task beside the polls that watch the run's record.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from app.agents.adapters import langgraph as adapter
from app.agents.registry import build_registry
from app.main import create_app
from app.services import build_services
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, app_client
from tests.integration.test_auth_api import assert_problem
from tests.support.adapters import langgraph_agents as graphs
from tests.support.adapters.calls import bearer, sse_frames
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.sse import Frame

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

MODULE = "tests.support.adapters.langgraph_agents"
AGENTS = [
    f"support={MODULE}:chat_graph",
    f"approve={MODULE}:approval_graph",
    f"failing={MODULE}:failing_graph",
    f"brief={MODULE}:brief_graph",
    f"slow={MODULE}:slow_graph",
    f"nested={MODULE}:nested_graph",
    f"keeper={MODULE}:keeper_graph",
    f"{MODULE}:plain_builder",  # uncompiled and unnamed: served compiled, as "langgraph"
]
Auth = dict[str, str]


def _settings(make_settings: SettingsFactory, **overrides: Any) -> Any:
    return make_settings(RATE_LIMIT_ENABLED=False, AGENTS=AGENTS, **overrides)


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[AppClient]:
    async with app_client(_settings(make_settings)) as http:
        yield http


@pytest.fixture
async def any_client(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[AppClient]:
    """Both session backends: the thread is kept in memory, or in the private redis-server."""
    async with app_client(_settings(make_settings, **store_backend)) as http:
        yield http


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
    async def runs() -> Any:
        return (await client.get(f"/v1/runs?status={status}", headers=auth)).json()["items"]

    (run,) = await _until(runs, lambda items: len(items) == 1, f"a run {status}")
    return dict(run)


# -- 1. invoke ----------------------------------------------------------------------------
async def test_invoke_answers_with_the_graphs_text_usage_and_run_id(client: AppClient) -> None:
    auth = await bearer(client)
    response = await client.post(
        "/v1/agents/support/invoke", json={"input": "Hello there"}, headers=auth
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["output"] == "You said: Hello there"
    # The model saw 2 words and streamed 4: what its usage_metadata said.
    assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert answer["metadata"]["steps"] == 1  # one node ran
    run = (await client.get(f"/v1/runs/{answer['run_id']}", headers=auth)).json()
    assert run["agent"] == "support" and run["status"] == "completed"
    assert run["output"] == answer["output"] and run["usage"] == answer["usage"]


# -- 2. SSE stream ------------------------------------------------------------------------
async def test_stream_carries_the_models_deltas_in_order_and_the_full_text(
    client: AppClient,
) -> None:
    auth = await bearer(client)
    response = await client.post(
        "/v1/agents/support/stream", json={"input": "tell me about tides"}, headers=auth
    )
    frames = sse_frames(response)
    tokens = [f.json["text"] for f in frames if f.event == "token"]
    assert tokens == ["You ", "said: ", "tell ", "me ", "about ", "tides"]
    assert frames[0].event == "run_started" and frames[-1].event == "run_completed"
    assert frames[-1].json["output"] == "".join(tokens) == "You said: tell me about tides"
    steps = [f.json for f in frames if f.event == "step"]
    assert [(s["number"], s["success"]) for s in steps] == [(1, True)]


# -- 3. tools and steps -------------------------------------------------------------------
async def test_a_tool_call_and_its_result_are_events_between_the_node_steps(
    client: AppClient,
) -> None:
    auth = await bearer(client)
    response = await client.post(
        "/v1/agents/support/stream", json={"input": "Please add 2 and 3"}, headers=auth
    )
    frames = sse_frames(response)
    kinds = [f.event for f in frames if f.event not in {"token", "message"}]
    assert kinds == [  # a step event ends its node, after what the node did
        "run_started",
        "tool_call",
        "step",  # agent: asked for the tool
        "tool_result",
        "step",  # tools
        "step",  # agent: read the result back
        "run_completed",
    ]
    call = next(f.json for f in frames if f.event == "tool_call")
    result = next(f.json for f in frames if f.event == "tool_result")
    assert (call["id"], call["name"], call["arguments"]) == ("call-add-1", "add", {"a": 2, "b": 3})
    assert (result["id"], result["output"], result["success"]) == ("call-add-1", "5", True)
    assert [f.json["number"] for f in frames if f.event == "step"] == [1, 2, 3]
    end = frames[-1].json
    assert end["output"] == "The tool says 5."
    # Both model calls counted: 5 words, then 5 + the tool's "5" = 6 words shown.
    assert end["usage"]["prompt_tokens"] == 5 + 6 and end["usage"]["completion_tokens"] == 1 + 4
    # Each node is a step of the run's budget.
    body = {"input": "Please add 2 and 3", "max_steps": 2}
    response = await client.post("/v1/agents/support/invoke", json=body, headers=auth)
    assert_problem(response, 422, "max_steps_exceeded")


# -- 4. human input: interrupt() ------------------------------------------------------------
async def _answer(
    client: AppClient, auth: Auth, path: str, answers: list[Any]
) -> list[dict[str, Any]]:
    """Answer each question the run or task at ``path`` asks (its record's pending_input),
    in turn, with POST {path}/input; the questions as the record showed them."""
    asked: list[dict[str, Any]] = []

    async def pending() -> Any:
        return (await client.get(path, headers=auth)).json()["pending_input"]

    for value in answers:
        question = await _until(
            pending,
            lambda p: p is not None and p["request_id"] not in {q["request_id"] for q in asked},
            f"question {len(asked) + 1}",
        )
        asked.append(question)
        body = {"request_id": question["request_id"], "value": value}
        answered = await client.post(f"{path}/input", json=body, headers=auth)
        assert answered.status_code == 202, answered.text
    return asked


async def _stream_answering(
    client: AppClient, auth: Auth, agent: str, text: str, answers: list[Any]
) -> tuple[list[Frame], list[dict[str, Any]]]:
    """Stream a run and answer its questions; its frames and the questions."""
    stream = asyncio.create_task(
        client.post(f"/v1/agents/{agent}/stream", json={"input": text}, headers=auth)
    )
    try:
        run_id = (await _live_run(client, auth, "input_required"))["run_id"]
        asked = await _answer(client, auth, f"/v1/runs/{run_id}", answers)
        frames = sse_frames(await asyncio.wait_for(stream, 10))
    finally:
        stream.cancel()
    return frames, asked


async def test_interrupts_are_asked_over_sse_and_answered_with_post_input(
    client: AppClient,
) -> None:
    auth = await bearer(client)
    frames, asked = await _stream_answering(
        client, auth, "approve", "Refund order 7", ["Ada", True]
    )
    assert [(q["kind"], q["prompt"]) for q in asked] == [
        ("text", "Who signs the reply?"),
        ("confirm", "Send this reply? You said: Refund order 7"),
    ]
    assert [f.json["request_id"] for f in frames if f.event == "input_required"] == [
        q["request_id"] for q in asked
    ]
    assert frames[-1].json["output"] == "Sent, signed Ada: You said: Refund order 7"
    # The asking node ran twice (asked, then answered) but is one step.
    assert [f.json["number"] for f in frames if f.event == "step"] == [1, 2]


async def test_a_subgraph_streams_and_asks_through_its_parent(client: AppClient) -> None:
    auth = await bearer(client)
    info = (await client.get("/v1/agents/nested", headers=auth)).json()
    assert info["input_schema"]["properties"]["input"]["type"] == "string"  # a chat: text in
    frames, asked = await _stream_answering(client, auth, "nested", "Ship it", ["Bo", True])
    assert [q["kind"] for q in asked] == ["text", "confirm"]
    tokens = [f.json["text"] for f in frames if f.event == "token"]
    assert tokens[:3] == ["You ", "said: ", "Ship "]  # the subgraph's model, streamed
    assert frames[-1].json["output"] == "Sent, signed Bo: You said: Ship it"
    # Steps are the parent's nodes: the subgraph, then take_note.
    assert [f.json["number"] for f in frames if f.event == "step"] == [1, 2]


def test_interrupts_are_answered_over_the_websocket(make_settings: SettingsFactory) -> None:
    settings = _settings(make_settings)
    answers = iter(["Grace", False])
    seen: list[dict[str, Any]] = []
    with TestClient(create_app(settings, services=build_services(settings))) as client:
        form = {"username": "admin", "password": ADMIN_PASSWORD}
        token = client.post("/v1/auth/token", data=form).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        with client.websocket_connect("/v1/agents/approve/ws", headers=auth) as socket:
            socket.send_json({"type": "start", "input": "Close my account"})
            while not seen or seen[-1]["type"] not in {"run_completed", "error"}:
                seen.append(socket.receive_json())
                if seen[-1]["type"] == "input_required":
                    answer = {"request_id": seen[-1]["request_id"], "value": next(answers)}
                    socket.send_json({"type": "input", **answer})
    asked = [event["kind"] for event in seen if event["type"] == "input_required"]
    assert asked == ["text", "confirm"]
    assert seen[-1]["type"] == "run_completed" and seen[-1]["output"] == "Not sent."


async def test_a_background_task_is_asked_and_answered_through_its_input_route(
    client: AppClient,
) -> None:
    auth = await bearer(client)
    submitted = await client.post(
        "/v1/tasks", json={"agent": "approve", "input": "Reset my password"}, headers=auth
    )
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    asked = await _answer(client, auth, f"/v1/tasks/{task_id}", ["Lin", True])
    assert [q["kind"] for q in asked] == ["text", "confirm"]
    result = await _until(
        lambda: client.get(f"/v1/tasks/{task_id}/result", headers=auth),
        lambda r: r.status_code == 200,
        "the task's result",
    )
    assert result.json()["output"] == "Sent, signed Lin: You said: Reset my password"


# -- 5. sessions: the graph's thread kept in the session state ------------------------------
@pytest.mark.parametrize("agent", ["support", "keeper"])  # our checkpointer; the graph's own
async def test_a_session_continues_the_graphs_thread(any_client: AppClient, agent: str) -> None:
    auth = await bearer(any_client)
    session_id, answers = None, []
    for text in ("My name is Ada.", "What is my name?"):
        body = {"input": text, **({"session_id": session_id} if session_id else {})}
        response = await any_client.post(f"/v1/agents/{agent}/invoke", json=body, headers=auth)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        session_id = answers[-1]["session_id"]
    assert answers[1]["output"] == "You said: What is my name? Earlier you said: My name is Ada."
    # The second call's model was shown the first exchange (4 + 6 words), then the question.
    assert answers[1]["usage"]["prompt_tokens"] == 4 + 6 + 4
    body = {"input": "What is my name?", "store": False}  # no session: a thread of its own
    alone = await any_client.post(f"/v1/agents/{agent}/invoke", json=body, headers=auth)
    assert alone.json()["output"] == "You said: What is my name?"
    if agent == "keeper":  # the thread id is the session id; the stateless run's is gone
        assert session_id in graphs.keeper_saver.storage
        assert alone.json()["run_id"] not in graphs.keeper_saver.storage
        return
    # Ours keeps the thread's latest checkpoint only, with the session: all a next run needs.
    stored = await any_client.services.sessions.state.load(str(session_id), adapter.STATE_NAME)
    thread = json.loads(stored or b"{}")
    assert [(c["ns"], c["parent"]) for c in thread["checkpoints"]] == [("", None)]


# -- 6. cancel: the graph's task stops and its model stream closes ------------------------
async def test_cancel_stops_the_graph_and_closes_its_model_stream(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = await bearer(client)
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.05, duration=20)
        monkeypatch.setenv(graphs.URL_VARIABLE, fake.url)
        stream = asyncio.create_task(
            client.post("/v1/agents/slow/stream", json={"input": "talk forever"}, headers=auth)
        )
        try:
            run = await _live_run(client, auth, "running")
            await _until(lambda: asyncio.sleep(0, fake.request_count), bool, "the model call")
            assert not fake.disconnected.is_set()
            cancelled = await client.post(f"/v1/runs/{run['run_id']}/cancel", headers=auth)
            cancelled_at = time.monotonic()
            assert cancelled.status_code == 202, cancelled.text
            assert await asyncio.to_thread(fake.disconnected.wait, 2), "the stream stayed open"
            assert fake.disconnected_at is not None
            assert fake.disconnected_at - cancelled_at < 1.0
            frames = sse_frames(await asyncio.wait_for(stream, 10))
        finally:
            stream.cancel()
    assert any(f.event == "token" and f.json["text"].startswith("tick") for f in frames)
    assert frames[-1].event == "error" and frames[-1].json["code"] == "cancelled"


# -- 7. a node's exception ----------------------------------------------------------------
async def test_a_node_that_raises_is_an_agent_error(client: AppClient) -> None:
    auth = await bearer(client)
    frames = sse_frames(
        await client.post("/v1/agents/failing/stream", json={"input": "go"}, headers=auth)
    )
    assert [(s.json["number"], s.json["success"]) for s in frames if s.event == "step"] == [
        (1, False)
    ]
    assert frames[-1].event == "error" and frames[-1].json["code"] == "agent_error"
    response = await client.post("/v1/agents/failing/invoke", json={"input": "go"}, headers=auth)
    assert_problem(response, 500, "agent_error")


# -- structured input ----------------------------------------------------------------------
async def test_a_graph_with_state_fields_takes_an_object_input(client: AppClient) -> None:
    auth = await bearer(client)
    info = (await client.get("/v1/agents/brief", headers=auth)).json()
    fields = info["input_schema"]["properties"]["input"]
    assert set(fields["properties"]) == {"topic", "words"}
    assert fields["required"] == ["topic"]
    answer = await client.post(
        "/v1/agents/brief/invoke", json={"input": {"topic": "tides", "words": 5}}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == "A 5-word brief on tides."
    missing = await client.post(
        "/v1/agents/brief/invoke", json={"input": {"words": 5}}, headers=auth
    )
    assert "topic" in assert_problem(missing, 422, "validation_error")["detail"]


# -- 8. names and what the adapter takes ----------------------------------------------------
async def test_names_come_from_the_graph_and_other_objects_are_not_taken(
    client: AppClient,
) -> None:
    registry = build_registry([f"{MODULE}:chat_graph", f"{MODULE}:plain_builder"])
    support, unnamed = registry.require("support-bot"), registry.require("langgraph")
    assert support.capabilities.tools and support.capabilities.human_input
    assert not unnamed.capabilities.tools
    assert adapter.accepts(graphs.plain_graph) and adapter.accepts(graphs.plain_builder)
    for other in (object(), graphs.model, graphs.add, graphs.call_model, "graph"):
        assert not adapter.accepts(other)
    # The builder served without a name (AGENTS) runs compiled, under the graph's name.
    auth = await bearer(client)
    response = await client.post("/v1/agents/langgraph/invoke", json={"input": "hi"}, headers=auth)
    assert response.json()["output"] == "You said: hi"


# -- the example in examples/langgraph -----------------------------------------------------
async def test_the_example_graph_drafts_asks_and_sends(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # its offline model
    settings = make_settings(
        RATE_LIMIT_ENABLED=False, AGENTS=["support=examples.langgraph.agent:graph"]
    )
    async with app_client(settings) as http:
        auth = await bearer(http)
        frames, asked = await _stream_answering(http, auth, "support", "Where is my order?", [True])
    reply = "Thanks for writing in! Your order is on its way and should arrive within two days."
    assert [(q["kind"], q["prompt"]) for q in asked] == [("confirm", f"Send this reply? {reply}")]
    assert "".join(f.json["text"] for f in frames if f.event == "token").startswith(reply)
    assert frames[-1].json["output"] == f"Sent: {reply}"

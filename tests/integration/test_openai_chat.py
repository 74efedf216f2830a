"""POST /v1/chat/completions and GET /v1/models in-process, on both store backends: shapes
(held to the openai package's types), the mapping of messages onto a run, sessions, the
agent's own tool calls, human input, and the same run records as the native routes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion

from tests.conftest import AppClient, SettingsFactory
from tests.integration.openai_chat_support import chunks, error_of, openai_app, sse_data, user

Client = tuple[AppClient, dict[str, str]]


@pytest.fixture
async def oc(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[Client]:
    async for pair in openai_app(make_settings, **store_backend):
        yield pair


async def test_models_are_the_agents(oc: Client) -> None:
    client, auth = oc
    listed = await client.get("/v1/models", headers=auth)
    assert listed.status_code == 200
    body = listed.json()
    assert body["object"] == "list"
    ids = [Model.model_validate(item).id for item in body["data"]]
    agents = (await client.get("/v1/agents", headers=auth)).json()["items"]
    assert ids == [agent["name"] for agent in agents]
    one = await client.get("/v1/models/assistant", headers=auth)
    assert Model.model_validate(one.json()).id == "assistant"
    missing = await client.get("/v1/models/gpt-4o", headers=auth)
    assert missing.status_code == 404
    error = error_of(missing)
    assert (error["type"], error["code"]) == ("invalid_request_error", "model_not_found")
    assert error_of(await client.get("/v1/models"))["code"] == "unauthorized"


async def test_a_completion_is_a_kept_run_without_a_session(oc: Client) -> None:
    client, auth = oc
    answer = await client.post(
        "/v1/chat/completions", headers=auth, json={"model": "chat", "messages": [user("Hi")]}
    )
    assert answer.status_code == 200, answer.text
    completion = ChatCompletion.model_validate(answer.json())
    run_id = answer.headers["x-run-id"]
    assert completion.id == f"chatcmpl-{run_id}" and completion.model == "chat"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert answer.json()["agent_run"] == {"id": run_id, "session_id": None, "steps": []}
    assert answer.headers["x-cache"] == "MISS" and "x-session-id" not in answer.headers
    record = (await client.get(f"/v1/runs/{run_id}", headers=auth)).json()
    assert (record["status"], record["kind"], record["agent"]) == ("completed", "run", "chat")
    assert record["output"] == completion.choices[0].message.content
    assert record["usage"]["total_tokens"] == completion.usage.total_tokens > 0  # type: ignore[union-attr]
    assert (await client.get("/v1/sessions", headers=auth)).json()["total"] == 0
    again = await client.post(
        "/v1/chat/completions", headers=auth, json={"model": "chat", "messages": [user("Hi")]}
    )
    assert again.headers["x-cache"] == "HIT"  # the same LLM cache as every run


async def test_earlier_messages_are_the_runs_history_and_params_pass(oc: Client) -> None:
    client, auth = oc
    messages = [
        {"role": "system", "content": "Be brief."},
        user("My name is Ada."),
        {"role": "assistant", "content": 'Hello "Ada".'},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ]
    body = {"model": "recall", "messages": messages, "temperature": 0.5, "max_tokens": 9}
    answer = await client.post("/v1/chat/completions", headers=auth, json=body)
    seen = json.loads(ChatCompletion.model_validate(answer.json()).choices[0].message.content or "")
    assert seen["input"] == "What is my name?"
    assert [(m["role"], m["content"]) for m in seen["history"]] == [
        ("system", "Be brief."),
        ("user", "My name is Ada."),
        ("assistant", 'Hello "Ada".'),
    ]
    assert seen["params"] == {"temperature": 0.5, "max_tokens": 9}


async def test_a_stream_is_chunks_that_join_to_the_answer_then_usage_and_done(oc: Client) -> None:
    client, auth = oc
    body = {
        "model": "recall",
        "messages": [user('Quote "this" \\ and é')],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await client.post("/v1/chat/completions", headers=auth, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    run_id = response.headers["x-run-id"]
    parsed = chunks(sse_data(response))
    assert {c.id for c in parsed} == {f"chatcmpl-{run_id}"}
    assert parsed[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert json.loads(text)["input"] == 'Quote "this" \\ and é'
    assert [c.choices[0].finish_reason for c in parsed if c.choices][-1] == "stop"
    assert parsed[-1].choices == [] and parsed[-1].usage is not None
    record = (await client.get(f"/v1/runs/{run_id}", headers=auth)).json()
    assert record["output"] == text
    assert parsed[-1].usage.total_tokens == record["usage"]["total_tokens"]
    plain = await client.post(
        "/v1/chat/completions", headers=auth, json={**body, "stream_options": None}
    )
    assert all(c.choices for c in chunks(sse_data(plain)))  # no usage chunk unless asked


async def test_the_agents_own_tool_calls_are_steps_not_client_tool_calls(oc: Client) -> None:
    client, auth = oc
    body = {"model": "assistant", "messages": [user("What is 12*(3+4)?")]}
    answer = (await client.post("/v1/chat/completions", headers=auth, json=body)).json()
    completion = ChatCompletion.model_validate(answer)
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert "84" in (completion.choices[0].message.content or "")
    steps = answer["agent_run"]["steps"]
    assert [(s["type"], s.get("name"), s.get("output")) for s in steps] == [
        ("tool_call", "calculator", None),
        ("tool_result", None, "84"),
    ]
    streamed = await client.post(
        "/v1/chat/completions", headers=auth, json={**body, "stream": True}
    )
    payloads = [json.loads(p) for p in sse_data(streamed)[:-1]]
    assert [p["agent_step"]["type"] for p in payloads if "agent_step" in p] == [
        "tool_call",
        "tool_result",
    ]
    assert all(not c.choices[0].delta.tool_calls for c in chunks(sse_data(streamed)))


async def test_session_id_continues_a_session_of_the_callers(oc: Client) -> None:
    client, auth = oc
    session = (await client.post("/v1/sessions", headers=auth, json={"agent": "recall"})).json()
    for text in ("first", "second"):
        body = {"model": "recall", "messages": [user(text)], "session_id": session["id"]}
        answer = await client.post("/v1/chat/completions", headers=auth, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-session-id"] == session["id"]
        assert answer.json()["agent_run"]["session_id"] == session["id"]
    seen = json.loads(answer.json()["choices"][0]["message"]["content"])
    assert [(m["role"], m["content"][:5]) for m in seen["history"]] == [
        ("user", "first"),
        ("assistant", '{"his'),
    ]
    messages = (await client.get(f"/v1/sessions/{session['id']}/messages", headers=auth)).json()
    assert len(messages["items"]) == 4
    two = {"model": "recall", "messages": [user("a"), user("b")], "session_id": session["id"]}
    refused = await client.post("/v1/chat/completions", headers=auth, json=two)
    assert (refused.status_code, error_of(refused)["param"]) == (400, "messages")
    other = {"model": "recall", "messages": [user("a")], "session_id": "0" * 32}
    missing = await client.post("/v1/chat/completions", headers=auth, json=other)
    assert (missing.status_code, error_of(missing)["code"]) == (404, "session_not_found")


async def test_a_question_ends_the_completion_and_the_run_waits_for_its_answer(
    oc: Client,
) -> None:
    client, auth = oc
    body = {"model": "approval", "messages": [user("Email the team about Friday.")]}
    refused = await client.post("/v1/chat/completions", headers=auth, json=body)
    assert refused.status_code == 409
    assert refused.headers["x-should-retry"] == "false"  # a retry would start another run
    error = error_of(refused)
    assert error["code"] == "input_required"
    run_id, asked = error["run_id"], error["input_request"]
    assert asked["kind"] == "choice" and asked["choices"] == ["low", "normal", "high"]
    answered = await client.post(
        f"/v1/runs/{run_id}/input",
        headers=auth,
        json={"request_id": asked["request_id"], "value": "high"},
    )
    assert answered.status_code == 202
    record = await _wait_for(
        client,
        auth,
        run_id,
        lambda r: r["pending_input"] is not None and r["pending_input"]["kind"] == "confirm",
    )
    await client.post(
        f"/v1/runs/{run_id}/input",
        headers=auth,
        json={"request_id": record["pending_input"]["request_id"], "value": True},
    )
    done = await _wait_for(client, auth, run_id, lambda r: r["status"] == "completed")
    assert done["output"].startswith("Approved at high priority.")


async def _wait_for(client: AppClient, auth: dict[str, str], run_id: str, ready: Any) -> Any:
    deadline = time.monotonic() + 10
    while True:
        record = (await client.get(f"/v1/runs/{run_id}", headers=auth)).json()
        if ready(record):
            return record
        assert time.monotonic() < deadline, record
        await _pause()


async def _pause() -> None:
    await asyncio.sleep(0.02)  # the run answers on its own task: poll its record

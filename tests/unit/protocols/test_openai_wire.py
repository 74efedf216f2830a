"""The OpenAI frames and bodies we write by hand are what the ``openai`` package parses: each
kind is validated against the SDK's own types (ChatCompletionChunk, ChatCompletion, Model),
and the token text cut from an event's JSON is the text, whatever it holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.agents.events import (
    ErrorEvent,
    InputRequired,
    RunCompleted,
    TokenEvent,
    ToolCallEvent,
    token_event,
)
from app.agents.feed import LoggedEvent
from app.llm.types import Usage
from app.protocols.openai.chat_schemas import (
    AgentRun,
    ChatCompletionChoice,
    ChatCompletionMessage,
    OpenAIModel,
)
from app.protocols.openai.chat_schemas import ChatCompletion as OurCompletion
from app.protocols.openai.chat_stream import (
    DONE,
    ChunkEncoder,
    input_required_body,
    run_error_body,
    shutdown_frame,
    token_text_json,
)


def _data(frame: bytes) -> Any:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n"), frame
    assert frame.count(b"\n\n") == 1, "one frame"
    return json.loads(frame[len(b"data: ") : -2])


def _encoder(include_usage: bool) -> ChunkEncoder:
    return ChunkEncoder(
        completion_id="chatcmpl-abc", created=1700000000, model="chat", include_usage=include_usage
    )


@pytest.mark.parametrize("include_usage", [False, True])
def test_every_chunk_kind_is_a_chat_completion_chunk(include_usage: bool) -> None:
    encoder = _encoder(include_usage)
    token = LoggedEvent.of(TokenEvent(seq=2, text='say "hi"\n\\ é'))
    step = LoggedEvent.of(ToolCallEvent(seq=3, id="call-1", name="calculator", arguments={"a": 1}))
    frames = {
        "opening": encoder.opening("run1", None),
        "content": encoder.content(token_text_json(token.json)),
        "step": encoder.step(step.json),
        "finish": encoder.finish(),
    }
    for kind, frame in frames.items():
        data = _data(frame)
        chunk = ChatCompletionChunk.model_validate(data)
        assert chunk.id == "chatcmpl-abc" and chunk.model == "chat", kind
        assert chunk.object == "chat.completion.chunk"
        assert len(chunk.choices) == 1 and chunk.choices[0].index == 0
        assert not chunk.choices[0].delta.tool_calls, "the agent's tools are not the client's"
        assert ("usage" in data) is include_usage and data.get("usage") is None, kind
    assert _data(frames["opening"])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert _data(frames["opening"])["agent_run"] == {"id": "run1", "session_id": None}
    assert ChatCompletionChunk.model_validate(_data(frames["content"])).choices[
        0
    ].delta.content == ('say "hi"\n\\ é')
    assert _data(frames["step"])["agent_step"] == json.loads(step.json)
    assert _data(frames["step"])["choices"][0]["delta"] == {}
    finish = ChatCompletionChunk.model_validate(_data(frames["finish"]))
    assert finish.choices[0].finish_reason == "stop"


def test_the_usage_chunk_has_no_choices_and_the_usage() -> None:
    completed = RunCompleted(
        output="x", usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    )
    chunk = ChatCompletionChunk.model_validate(_data(_encoder(True).usage(completed)))
    assert chunk.choices == []
    assert chunk.usage is not None
    assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, chunk.usage.total_tokens) == (
        3,
        4,
        7,
    )
    assert DONE == b"data: [DONE]\n\n"


def test_errors_in_the_stream_are_openai_error_objects() -> None:
    failed = run_error_body(ErrorEvent(code="run_timeout", message="too slow"), "run1")
    assert failed == {
        "message": "too slow",
        "type": "server_error",
        "param": None,
        "code": "run_timeout",
        "run_id": "run1",
    }
    asked = InputRequired(request_id="q1", kind="confirm", prompt="Go?")
    body = input_required_body(asked, run_id="run1", session_id="s1", prefix="/v1")
    assert body["code"] == "input_required" and body["run_id"] == "run1"
    assert body["input_request"] == {
        "request_id": "q1",
        "kind": "confirm",
        "prompt": "Go?",
        "choices": None,
    }
    assert "POST /v1/runs/run1/input" in body["message"]
    shutdown = _data(shutdown_frame())
    assert shutdown["error"]["code"] == "server_shutdown"
    assert shutdown["error"]["type"] == "server_error"


@given(st.text())
def test_token_text_is_cut_from_the_event_json_exactly(text: str) -> None:
    for event in (TokenEvent(seq=12, text=text), token_event(text)):
        item = LoggedEvent.of(event)
        assert json.loads(token_text_json(item.json)) == text


def test_the_completion_and_model_are_what_the_sdk_parses() -> None:
    ours = OurCompletion(
        id="chatcmpl-run1",
        created=1700000000,
        model="assistant",
        choices=[ChatCompletionChoice(message=ChatCompletionMessage(content="84"))],
        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        agent_run=AgentRun(id="run1", session_id=None),
    )
    parsed = ChatCompletion.model_validate(ours.model_dump(mode="json"))
    assert parsed.choices[0].message.content == "84"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and parsed.usage.total_tokens == 3
    model = Model.model_validate(
        OpenAIModel(id="chat", created=1, description="d").model_dump(mode="json")
    )
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "agent-service")

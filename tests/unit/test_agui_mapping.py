"""The AG-UI mappings without a server: RunAgentInput onto our run, our events onto AG-UI's."""

from __future__ import annotations

from typing import Any

import pytest
from ag_ui.core import Event, RunAgentInput
from pydantic import TypeAdapter

from app.agents.events import (
    InputRequired,
    MessageEvent,
    RunCompleted,
    RunStarted,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
)
from app.agents.feed import LoggedEvent
from app.agents.followers import EventsMissed, coalesce
from app.core.errors import AppError
from app.protocols.agui.event_mapping import AguiEvents, parse_interrupt_id
from app.protocols.agui.input_mapping import map_input
from app.protocols.agui.stream import encode

EVENTS: TypeAdapter[Any] = TypeAdapter(Event)
RUN = "0" * 31 + "1"


def logged(events: list[Any]) -> list[LoggedEvent]:
    out = []
    for seq, event in enumerate(events, start=1):
        event.seq = seq
        out.append(LoggedEvent.of(event))
    return out


def run_events() -> list[LoggedEvent]:
    return logged(
        [
            RunStarted(run_id=RUN, agent="chat", session_id="t"),
            TokenEvent(text="Hel"),
            TokenEvent(text="lo"),
            MessageEvent(content="Hello"),
            ToolCallEvent(id="c1", name="calculator", arguments={"expression": "1+1"}),
            StepEvent(number=1, duration_s=0.1),
            InputRequired(request_id="q1", kind="choice", prompt="Which?", choices=["a", "b"]),
            TokenEvent(text="Done"),
            RunCompleted(output="Done"),
        ]
    )


def mapped(items: list[LoggedEvent]) -> list[Any]:
    mapper = AguiEvents(thread_id="t", run_id=RUN, agui_run_id="r")
    out: list[Any] = []
    for item in items:
        out += mapper.map(item)
    return out


def test_the_stream_is_well_formed_and_replays_the_same_from_a_coalesced_log() -> None:
    live = mapped(run_events())
    kinds = [e.type.value for e in live]
    assert (
        kinds
        == [
            "RUN_STARTED",
            "STEP_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "STEP_FINISHED",
            "RUN_FINISHED",  # the question: an interrupt
            "RUN_STARTED",  # the answer's segment
            "STEP_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "STEP_FINISHED",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED",
        ][: len(kinds)]
        or kinds
    )
    assert live[10].outcome.interrupts[0].id == f"{RUN}.q1"
    assert parse_interrupt_id(live[10].outcome.interrupts[0].id) == (RUN, "q1")
    # Read back from the log, token runs are merged: same message ids, same text.
    replayed = mapped(coalesce(run_events()))
    ids = {e.message_id for e in live if hasattr(e, "message_id")}
    assert ids == {e.message_id for e in replayed if hasattr(e, "message_id")}
    text = "".join(getattr(e, "delta", "") for e in live if e.type.value.startswith("TEXT"))
    assert text == "".join(
        getattr(e, "delta", "") for e in replayed if e.type.value.startswith("TEXT")
    )
    for event in live:  # each frame is valid AG-UI as the Python package reads it
        frame = encode([event], 7).decode()
        assert frame.startswith("data: ") and frame.endswith("\nid: 7\n\n")
        assert EVENTS.validate_json(frame.splitlines()[0][6:]) == event


def test_missed_events_are_a_custom_event() -> None:
    mapper = AguiEvents(thread_id="t", run_id=RUN, agui_run_id="r")
    out: list[Any] = mapper.map(EventsMissed(from_seq=2, to_seq=9))
    assert [e.type.value for e in out] == ["RUN_STARTED", "CUSTOM"]
    assert out[1].name == "agent-service.events_missed" and out[1].value["toSeq"] == 9


def agui_input(**fields: Any) -> RunAgentInput:
    base: dict[str, Any] = {"threadId": "t-1", "runId": "r", "messages": []}
    return RunAgentInput.model_validate({**base, **fields})


def test_the_last_user_message_is_the_input_and_earlier_ones_the_history() -> None:
    agui = agui_input(
        messages=[
            {"id": "1", "role": "developer", "content": "Be brief."},
            {"id": "2", "role": "user", "content": "Hi"},
            {
                "id": "3",
                "role": "assistant",
                "toolCalls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"id": "4", "role": "tool", "toolCallId": "c", "content": "ok"},
            {"id": "5", "role": "reasoning", "content": "hmm"},
            {
                "id": "6",
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image", "source": {"type": "url", "value": "https://x/y.png"}},
                ],
            },
        ],
        context=[{"description": "page", "value": "settings"}],
        state={"cart": [1]},
        forwardedProps={"params": {"temperature": 0}, "maxSteps": 3},
    )
    mapped_input = map_input(agui, max_context_chars=1000)
    assert mapped_input.text == "Look"
    assert mapped_input.history is not None
    assert [m.role for m in mapped_input.history] == ["system", "user", "assistant", "tool"]
    assert mapped_input.history[2].tool_calls is not None
    assert mapped_input.context is not None and "page: settings" in (
        mapped_input.context.content or ""
    )
    assert mapped_input.state == b'{"cart":[1]}'
    assert mapped_input.body.max_steps == 3 and mapped_input.body.params == {"temperature": 0}
    only_new = map_input(
        agui_input(messages=[{"id": "1", "role": "user", "content": "Hi"}]), max_context_chars=10
    )
    assert only_new.history is None  # the thread's own history


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"threadId": "not ok"}, "threadId"),
        ({"messages": []}, "messages"),
        ({"messages": [{"id": "1", "role": "user", "content": "  "}]}, "messages"),
        ({"forwardedProps": {"maxSteps": 500}}, "forwardedProps.maxSteps"),
        ({"forwardedProps": {"onDisconnect": "later"}}, "forwardedProps.onDisconnect"),
        ({"forwardedProps": {"params": {"max_tokens": 0}}}, "forwardedProps.params"),
        ({"context": [{"description": "d", "value": "x" * 50}]}, "context"),
    ],
)
def test_bad_input_names_the_field(fields: dict[str, Any], where: str) -> None:
    messages = [{"id": "1", "role": "user", "content": "Hi"}]
    agui = agui_input(**{"messages": messages, **fields})
    with pytest.raises(AppError) as refused:
        map_input(agui, max_context_chars=40)
    assert refused.value.status == 422 and refused.value.detail.startswith(where + ":")

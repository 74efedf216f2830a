"""The hot path's token_event makes the same TokenEvent as the validated constructor, and a
logged event's JSON is the event's own model_dump_json()."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.agents import events as ev
from app.agents.events import EVENT_ADAPTER, TokenEvent, token_event
from app.agents.feed import LoggedEvent
from app.llm.types import Usage

WHEN = datetime(2026, 11, 30, 4, 0, 0, 123456, tzinfo=UTC)


@given(st.text())
def test_token_event_serialises_like_the_validated_constructor(text: str) -> None:
    fast, slow = token_event(text), TokenEvent(text=text)
    for event in (fast, slow):  # as the run stamps them
        event.__dict__.update(seq=7, ts=WHEN)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set == {"text"}
    assert EVENT_ADAPTER.validate_json(fast.model_dump_json()) == slow


def test_a_fast_token_event_copies_and_updates_like_any_model() -> None:
    event = token_event("hello")
    copy = event.model_copy(update={"seq": 3})
    assert copy.seq == 3 and copy.text == "hello" and event.seq == 0
    assert isinstance(copy, TokenEvent) and copy.type == "token"


EVERY_KIND: list[ev.Event] = [
    ev.RunStarted(run_id="r" * 32, agent="chat", session_id=None),
    ev.TokenEvent(text="é \u2028 \x01"),
    ev.MessageEvent(role="tool", content='{"a": 1}'),
    ev.ToolCallEvent(id="c1", name="calculator", arguments={"x": [1, 2.5, None, "ü"]}),
    ev.ToolResultEvent(id="c1", output="3.5", success=False),
    ev.StepEvent(number=2, duration_s=0.125),
    ev.PlanEvent(items=["a", "b"], reflection=None),
    ev.MemorySummaryEvent(summary="kept", messages_summarized=4),
    ev.LogEvent(level="warning", message="m", data={"k": 1.5, "b": True, "n": None}),
    ev.InputRequired(request_id="q", kind="choice", prompt="which?", choices=["x", "y"]),
    ev.ErrorEvent(code="llm_rate_limited", message="slow down", retryable=True, retry_after=2.0),
    ev.RunCompleted(output="done", usage=Usage(prompt_tokens=3, completion_tokens=4), cached=True),
]


def test_a_logged_events_json_is_its_model_dump_json() -> None:
    for event in EVERY_KIND:
        event.__dict__.update(seq=9, ts=WHEN)
        assert LoggedEvent.of(event).json == event.model_dump_json(), event.type

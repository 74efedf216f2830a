"""The hot path's token_event makes the same TokenEvent as the validated constructor."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.agents.events import EVENT_ADAPTER, TokenEvent, token_event

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

"""The Responses encoder numbers events by the run's log alone: a reader that got a run of
tokens merged into one (it fell behind) sees the same sequence numbers and the same text."""

from __future__ import annotations

from app.agents.events import Event, MessageEvent, RunCompleted, RunStarted, TokenEvent
from app.agents.feed import LoggedEvent
from app.agents.followers import coalesce
from app.protocols.openai.responses_encoder import ResponseEncoder, ResponseHead
from tests.integration.openai_responses_support import validated

HEAD = ResponseHead(id="resp_" + "a" * 32, run_id="a" * 32, model="chat", created_at=1.0)


def _log() -> list[LoggedEvent]:
    events: list[Event] = [
        RunStarted(run_id="a" * 32, agent="chat"),
        *(TokenEvent(text=f"t{n} ") for n in range(6)),
        MessageEvent(content="t0 t1 t2 t3 t4 t5 "),
        RunCompleted(output="t0 t1 t2 t3 t4 t5 "),
    ]
    for seq, event in enumerate(events, start=1):
        event.seq = seq
    return [LoggedEvent.of(event) for event in events]


def _encode(items: list[LoggedEvent]) -> list[dict[str, object]]:
    encoder = ResponseEncoder(HEAD)
    out = encoder.opening()
    for item in items:
        out += encoder.feed(item)
    assert encoder.ended
    return out


def test_merged_tokens_keep_the_numbers_and_the_text() -> None:
    log = _log()
    plain = validated(_encode(log))
    merged = _encode(coalesce(log))
    assert len(merged) < len(plain)
    assert [e["sequence_number"] for e in plain] == list(range(len(plain)))
    assert merged[-1] == plain[-1]  # response.completed: same number, same response
    deltas = [e for e in merged if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 1 and deltas[0]["delta"] == "t0 t1 t2 t3 t4 t5 "
    # The merged delta carries the number of the last token it holds.
    last_plain = [e for e in plain if e["type"] == "response.output_text.delta"][-1]
    assert deltas[0]["sequence_number"] == last_plain["sequence_number"]


def test_nothing_is_encoded_after_the_end() -> None:
    encoder = ResponseEncoder(HEAD)
    encoder.opening()
    for item in _log():
        encoder.feed(item)
    assert encoder.status == "completed"
    assert encoder.feed(_log()[1]) == []

"""Our run events as A2A task events (app/protocols/a2a/task_events.py): one status update per
change of state, the output as artifact chunks then whole, questions as input-required."""

from __future__ import annotations

from a2a.types import TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

from app.agents.events import (
    ErrorEvent,
    Event,
    InputRequired,
    MessageEvent,
    RunCompleted,
    RunStarted,
    StepEvent,
    TokenEvent,
)
from app.agents.feed import LoggedEvent
from app.protocols.a2a.proto_json import to_dict
from app.protocols.a2a.task_events import TaskEvents, Update
from app.protocols.a2a.task_view import TaskLinks, record_status, task_of
from app.store.run_records import PendingInputInfo, RunRecord

LINKS = TaskLinks(base_url="https://agents.example.com", api_prefix="/v1")
S = TaskState


def record(**changes: object) -> RunRecord:
    base = RunRecord(id="a" * 32, owner="user:x", agent="chat", input="hi", session_id="b" * 32)
    return base.model_copy(update=changes)


def feed(events: TaskEvents, *items: Event) -> list[Update]:
    out: list[Update] = []
    for seq, event in enumerate(items, start=events.last_seq + 1):
        out += events.feed(LoggedEvent.of(event.model_copy(update={"seq": seq})))
    return out


def states(updates: list[Update]) -> list[int]:
    return [u.status.state for u in updates if isinstance(u, TaskStatusUpdateEvent)]


def test_a_run_streams_working_chunks_then_the_whole_output_and_completed() -> None:
    events = TaskEvents(record(), LINKS, chunks=True)
    assert events.task().status.state == S.TASK_STATE_SUBMITTED
    updates = feed(
        events,
        RunStarted(run_id="r", agent="chat"),
        TokenEvent(text="Hel"),
        StepEvent(number=1, duration_s=0.1),
        TokenEvent(text="lo"),
        MessageEvent(content="Hello"),
        RunCompleted(output="Hello"),
    )
    assert states(updates) == [S.TASK_STATE_WORKING, S.TASK_STATE_COMPLETED]
    artifacts = [u for u in updates if isinstance(u, TaskArtifactUpdateEvent)]
    assert [(a.artifact.parts[0].text, a.append, a.last_chunk) for a in artifacts] == [
        ("Hel", False, False),
        ("lo", True, False),
        ("Hello", False, True),
    ]
    task = events.task()
    assert events.finished and task.artifacts[0].parts[0].text == "Hello"
    assert task.context_id == "b" * 32 and task.history[0].parts[0].text == "hi"


def test_webhooks_get_no_chunks() -> None:
    events = TaskEvents(record(), LINKS, chunks=False)
    updates = feed(events, RunStarted(run_id="r", agent="chat"), TokenEvent(text="x"))
    assert states(updates) == [S.TASK_STATE_WORKING] and len(updates) == 1
    assert events.task().artifacts[0].parts[0].text == "x"  # the output so far, in the Task


def test_a_question_is_input_required_with_how_to_answer_then_working_again() -> None:
    events = TaskEvents(record(), LINKS, chunks=True)
    asked = feed(
        events,
        RunStarted(run_id="r", agent="approval"),
        InputRequired(request_id="q1", kind="choice", prompt="Which?", choices=["a", "b"]),
    )
    question = asked[-1]
    assert isinstance(question, TaskStatusUpdateEvent)
    assert (
        question.status.state == S.TASK_STATE_INPUT_REQUIRED and events.stopped == "input_required"
    )
    text, how = question.status.message.parts
    assert text.text == "Which?"
    asked_for = to_dict(how.data)["input_required"]
    assert asked_for["request_id"] == "q1" and asked_for["choices"] == ["a", "b"]
    assert states(feed(events, TokenEvent(text="ok"))) == [S.TASK_STATE_WORKING]
    assert events.stopped is None


def test_errors_end_failed_and_a_cancel_ends_canceled() -> None:
    failed = TaskEvents(record(), LINKS, chunks=True)
    update = feed(failed, ErrorEvent(code="run_timeout", message="Too slow."))[-1]
    assert isinstance(update, TaskStatusUpdateEvent)
    assert update.status.state == S.TASK_STATE_FAILED
    assert update.status.message.parts[0].text == "Too slow."
    assert update.status.message.metadata["code"] == "run_timeout"
    cancelled = TaskEvents(record(), LINKS, chunks=True)
    assert states(feed(cancelled, ErrorEvent(code="cancelled", message="x"))) == [
        S.TASK_STATE_CANCELED
    ]


def test_records_map_onto_tasks() -> None:
    pending = PendingInputInfo(request_id="q", kind="confirm", prompt="Sure?")
    asking = record(status="input_required", pending_input=pending)
    assert record_status(asking).state == S.TASK_STATE_INPUT_REQUIRED
    assert record_status(asking).message.parts[0].text == "Sure?"
    task = task_of(record(status="paused"), LINKS, history_length=0)
    assert task.status.state == S.TASK_STATE_WORKING and list(task.history) == []
    links = to_dict(task.metadata)["links"]
    assert links["task"] == f"https://agents.example.com/v1/tasks/{'a' * 32}"
    failed = record_status(record(status="failed", error_code="llm_error", error_message="Down."))
    assert failed.state == S.TASK_STATE_FAILED and failed.message.metadata["code"] == "llm_error"

"""Our run's events as AG-UI events: one table, one row per event type.

A run of ours is one or more AG-UI runs ("segments"): it ends a segment when it asks for
input (RUN_FINISHED with an interrupt outcome; the run itself waits) and when it ends. The
mapper keeps what AG-UI needs across events: the open text message (tokens stream into it;
the agent's closing ``message`` ends it), the open step, the steps done. Ids are made from the
run id and our event seqs, so replaying the run's log gives the same ids as the live stream.

| ours | AG-UI |
| --- | --- |
| run_started | RUN_STARTED (protocolVersion; our run id in metadata) |
| token | TEXT_MESSAGE_START (first of a message), TEXT_MESSAGE_CONTENT |
| message (assistant) | TEXT_MESSAGE_END of the streamed message, or START/CONTENT/END whole |
| tool_call | TOOL_CALL_START, TOOL_CALL_ARGS (the arguments' JSON), TOOL_CALL_END |
| tool_result | TOOL_CALL_RESULT (role tool) |
| step | TEXT_MESSAGE_END of an open message, STEP_FINISHED of "step N" (STEP_STARTED came
  with the step's first event) |
| plan | STATE_DELTA: add /plan {items, reflection} |
| input_required | RUN_FINISHED, outcome interrupt (the segment ends) |
| run_completed | RUN_FINISHED, outcome success, result = output, usage |
| error | RUN_ERROR (code, message); a cancellation: RUN_FINISHED, outcome cancelled |
| log, memory_summary, other messages, events_missed | CUSTOM "agent-service.<type>" |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    CustomEvent,
    Interrupt,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateDeltaEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from app.agents.events import (
    ErrorEvent,
    Event,
    InputRequired,
    MessageEvent,
    PlanEvent,
    RunCompleted,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.followers import EventsMissed, FollowItem

META_KEY = "agent-service"  # our key in AG-UI metadata objects (AG-UI reserves "ag-ui")
CUSTOM_PREFIX = "agent-service."
# Error codes that mean "stopped, not failed": AG-UI's cancelled outcome, not RUN_ERROR.
CANCELLED_CODES = frozenset({"cancelled", "client_disconnected", "interrupted", "rolled_back"})
# The answer each kind of question takes, as the interrupt's responseSchema.
_SCHEMAS: dict[str, Callable[[InputRequired], dict[str, Any]]] = {
    "text": lambda q: {"type": "string", "minLength": 1},
    "choice": lambda q: {"type": "string", "enum": list(q.choices or [])},
    "confirm": lambda q: {"type": "boolean"},
}


def interrupt_id(run_id: str, request_id: str) -> str:
    """An interrupt names our run and its question, so a resume finds both."""
    return f"{run_id}.{request_id}"


def parse_interrupt_id(value: str) -> tuple[str, str] | None:
    run_id, dot, request_id = value.partition(".")
    return (run_id, request_id) if dot and run_id and request_id else None


class AguiEvents:
    """Maps one run's followed events; ``ended`` when the current segment has ended."""

    def __init__(
        self,
        *,
        thread_id: str,
        run_id: str,
        agui_run_id: str,
        input_timeout_seconds: float | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.agui_run_id = agui_run_id
        self._input_timeout = input_timeout_seconds
        self.segment_open = False
        self.ended = False  # the current segment ended (reset when the next one starts)
        self._message: str | None = None  # the open text message's id
        self._step: int | None = None  # the open step's number
        self._steps_done = 0

    # -- segments, messages, steps ---------------------------------------------------------
    def start_segment(self) -> list[BaseEvent]:
        self.segment_open, self.ended = True, False
        meta = {META_KEY: {"runId": self.run_id}}
        return [
            RunStartedEvent(
                thread_id=self.thread_id,
                run_id=self.agui_run_id,
                protocol_version=PROTOCOL_VERSION,
                metadata=meta,
            )
        ]

    def _opened(self) -> list[BaseEvent]:
        return [] if self.segment_open else self.start_segment()

    def _in_step(self) -> list[BaseEvent]:
        out = self._opened()
        if self._step is None:
            self._step = self._steps_done + 1
            out.append(StepStartedEvent(step_name=f"step {self._step}"))
        return out

    def _close_message(self) -> list[BaseEvent]:
        if self._message is None:
            return []
        message_id, self._message = self._message, None
        return [TextMessageEndEvent(message_id=message_id)]

    def _end_segment(self, last: BaseEvent) -> list[BaseEvent]:
        out = self._close_message()
        if self._step is not None:
            out.append(StepFinishedEvent(step_name=f"step {self._step}"))
            self._step = None
        out.append(last)
        self.segment_open, self.ended = False, True
        return out

    def _id(self, seq: int) -> str:
        return f"{self.run_id}-{seq}"

    # -- the table --------------------------------------------------------------------------
    def map(self, item: FollowItem) -> list[BaseEvent]:
        if isinstance(item, EventsMissed):
            value = {"fromSeq": item.from_seq, "toSeq": item.to_seq}
            return [*self._opened(), CustomEvent(name=CUSTOM_PREFIX + item.type, value=value)]
        event = item.event
        row = _ROWS.get(event.type)
        if event.type == "run_started":
            return self.start_segment()
        if row is None:
            return [*self._opened(), self._custom(event)]
        return row(self, event, item.first_seq)

    def _custom(self, event: Event) -> CustomEvent:
        value = event.model_dump(mode="json", exclude={"seq", "ts", "type"})
        return CustomEvent(name=CUSTOM_PREFIX + event.type, value=value)

    def _token(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, TokenEvent)  # noqa: S101 - the table's row for its type
        out = self._in_step()
        if self._message is None:
            self._message = self._id(first_seq)
            out.append(TextMessageStartEvent(message_id=self._message, role="assistant"))
        out.append(TextMessageContentEvent(message_id=self._message, delta=event.text))
        return out

    def _message_event(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, MessageEvent)  # noqa: S101
        if event.role != "assistant":
            return [*self._opened(), self._custom(event)]
        out = self._in_step()
        if self._message is not None:  # its text was streamed as tokens
            return [*out, *self._close_message()]
        message_id = self._id(event.seq)
        out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
        if event.content:
            out.append(TextMessageContentEvent(message_id=message_id, delta=event.content))
        out.append(TextMessageEndEvent(message_id=message_id))
        return out

    def _tool_call(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, ToolCallEvent)  # noqa: S101
        out = [*self._in_step(), *self._close_message()]
        arguments = json.dumps(event.arguments, separators=(",", ":"))
        out.append(ToolCallStartEvent(tool_call_id=event.id, tool_call_name=event.name))
        out.append(ToolCallArgsEvent(tool_call_id=event.id, delta=arguments))
        out.append(ToolCallEndEvent(tool_call_id=event.id))
        return out

    def _tool_result(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, ToolResultEvent)  # noqa: S101
        out = [*self._in_step(), *self._close_message()]
        meta = None if event.success else {META_KEY: {"success": False}}
        out.append(
            ToolCallResultEvent(
                message_id=self._id(event.seq),
                tool_call_id=event.id,
                content=event.output,
                role="tool",
                metadata=meta,
            )
        )
        return out

    def _step_event(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, StepEvent)  # noqa: S101
        out = [*self._opened(), *self._close_message()]  # a message ends with its step
        if self._step != event.number:
            if self._step is not None:  # an agent numbering its own steps: close ours first
                out.append(StepFinishedEvent(step_name=f"step {self._step}"))
            out.append(StepStartedEvent(step_name=f"step {event.number}"))
        meta = {META_KEY: {"durationS": event.duration_s, "success": event.success}}
        out.append(StepFinishedEvent(step_name=f"step {event.number}", metadata=meta))
        self._step, self._steps_done = None, event.number
        return out

    def _plan(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, PlanEvent)  # noqa: S101
        plan = {"items": event.items, "reflection": event.reflection}
        return [
            *self._in_step(),
            StateDeltaEvent.model_validate(
                {"delta": [{"op": "add", "path": "/plan", "value": plan}]}
            ),
        ]

    def _input_required(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, InputRequired)  # noqa: S101
        expires = None
        if self._input_timeout is not None:
            expires = (event.ts + timedelta(seconds=self._input_timeout)).isoformat()
        question = Interrupt(
            id=interrupt_id(self.run_id, event.request_id),
            reason="confirmation" if event.kind == "confirm" else "input_required",
            message=event.prompt,
            response_schema=_SCHEMAS[event.kind](event),
            expires_at=expires,
            metadata={META_KEY: {"kind": event.kind, "choices": event.choices or []}},
        )
        outcome = RunFinishedInterruptOutcome(interrupts=[question])
        finished = RunFinishedEvent(
            thread_id=self.thread_id, run_id=self.agui_run_id, outcome=outcome
        )
        return [*self._opened(), *self._end_segment(finished)]

    def _completed(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, RunCompleted)  # noqa: S101
        usage = TokenUsage(
            input_tokens=event.usage.prompt_tokens,
            output_tokens=event.usage.completion_tokens,
            total_tokens=event.usage.prompt_tokens + event.usage.completion_tokens,
        )
        finished = RunFinishedEvent(
            thread_id=self.thread_id,
            run_id=self.agui_run_id,
            result=event.output,
            outcome=RunFinishedSuccessOutcome(),
            usage=[usage],
        )
        return [*self._opened(), *self._end_segment(finished)]

    def _error(self, event: Event, first_seq: int) -> list[BaseEvent]:
        assert isinstance(event, ErrorEvent)  # noqa: S101
        last: BaseEvent
        if event.code in CANCELLED_CODES:
            last = RunFinishedEvent(
                thread_id=self.thread_id,
                run_id=self.agui_run_id,
                outcome=RunFinishedCancelledOutcome(),
            )
        else:
            last = RunErrorEvent(message=event.message, code=event.code)
        return [*self._opened(), *self._end_segment(last)]


_Row = Callable[[AguiEvents, Event, int], list[BaseEvent]]
_ROWS: dict[str, _Row] = {
    "token": AguiEvents._token,
    "message": AguiEvents._message_event,
    "tool_call": AguiEvents._tool_call,
    "tool_result": AguiEvents._tool_result,
    "step": AguiEvents._step_event,
    "plan": AguiEvents._plan,
    "input_required": AguiEvents._input_required,
    "run_completed": AguiEvents._completed,
    "error": AguiEvents._error,
}


def run_error(message: str, code: str) -> RunErrorEvent:
    """A refusal AG-UI wants as RUN_ERROR (an input that breaks the interrupt contract)."""
    return RunErrorEvent(message=message, code=code)

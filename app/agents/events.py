"""Everything an agent does is an Event; every transport adapts the same stream.

Agents create events without ``seq``; the run stamps ``seq`` (monotonic per run) and ``ts``
as it publishes them, so ordering is decided in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from app.core.clock import utcnow
from app.llm.types import Usage
from app.store.run_records import InputKind as InputKind  # re-exported: agents ask with it

_UNSTAMPED = datetime(1970, 1, 1, tzinfo=UTC)  # a fast-made event's ts until the run stamps it


class _Event(BaseModel):
    seq: int = 0
    ts: datetime = Field(default_factory=utcnow)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    run_id: str
    agent: str
    session_id: str | None = None


class TokenEvent(_Event):
    type: Literal["token"] = "token"
    text: str


_set_attribute = object.__setattr__
_new = object.__new__
_TOKEN_FIELDS_SET = frozenset({"text"})


def token_event(text: str) -> TokenEvent:
    """``TokenEvent(text=text)`` for the streaming hot path, several times cheaper: ``text``
    is a str already (it came from the model), so there is nothing to validate, and the run
    stamps ``seq`` and ``ts`` anyway. tests/unit/agents/test_events.py holds it equal to the
    validated constructor."""
    event = _new(TokenEvent)
    _set_attribute(event, "__dict__", {"seq": 0, "ts": _UNSTAMPED, "type": "token", "text": text})
    _set_attribute(event, "__pydantic_fields_set__", set(_TOKEN_FIELDS_SET))
    _set_attribute(event, "__pydantic_extra__", None)
    _set_attribute(event, "__pydantic_private__", None)
    return event


class MessageEvent(_Event):
    type: Literal["message"] = "message"
    role: Literal["assistant", "user", "system", "tool"] = "assistant"
    content: str


class ToolCallEvent(_Event):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultEvent(_Event):
    type: Literal["tool_result"] = "tool_result"
    id: str
    output: str
    success: bool = True


class StepEvent(_Event):
    type: Literal["step"] = "step"
    number: int
    duration_s: float
    success: bool = True


class PlanEvent(_Event):
    type: Literal["plan"] = "plan"
    items: list[str]
    reflection: str | None = None


class MemorySummaryEvent(_Event):
    """An agent compacted its working memory: what it kept, and how many messages it folded."""

    type: Literal["memory_summary"] = "memory_summary"
    summary: str
    messages_summarized: int = 0


LogLevel = Literal["debug", "info", "warning", "error"]
LogValue = str | int | float | bool | None


class LogEvent(_Event):
    """A progress note for humans watching the run; nothing acts on it."""

    type: Literal["log"] = "log"
    level: LogLevel = "info"
    message: str
    data: dict[str, LogValue] = Field(default_factory=dict)


class InputRequired(_Event):
    type: Literal["input_required"] = "input_required"
    request_id: str
    kind: InputKind = "text"
    prompt: str
    choices: list[str] | None = None


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    code: str
    message: str
    # Set for model provider failures (llm_*): whether the same request may succeed later,
    # and after how many seconds when the provider said (Retry-After).
    retryable: bool | None = None
    retry_after: float | None = None


class RunCompleted(_Event):
    type: Literal["run_completed"] = "run_completed"
    output: str
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    execution_time: float = 0.0


Event = Annotated[
    RunStarted
    | TokenEvent
    | MessageEvent
    | ToolCallEvent
    | ToolResultEvent
    | StepEvent
    | PlanEvent
    | MemorySummaryEvent
    | LogEvent
    | InputRequired
    | ErrorEvent
    | RunCompleted,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
TERMINAL_TYPES = frozenset({"run_completed", "error"})

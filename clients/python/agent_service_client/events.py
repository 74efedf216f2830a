"""The server's run events, as typed models (a discriminated union on ``type``).

The same models as the server's app/agents/events.py, field for field: this package must
install alone, so they are declared here, and tests/unit/test_python_client_contract.py fails
when the two JSON schemas differ. Besides the run's events a stream may carry
``events_missed`` (resumed from before what the server retains).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


def utcnow() -> datetime:
    return datetime.now(UTC)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


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


InputKind = Literal["text", "choice", "confirm"]


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


class EventsMissed(BaseModel):
    """The stream resumed from before the events the server keeps: ``from_seq``..``to_seq``
    are gone; ``run`` (``task`` on task streams) is the record as it is now."""

    type: Literal["events_missed"] = "events_missed"
    from_seq: int
    to_seq: int
    run: dict[str, Any] | None = None
    task: dict[str, Any] | None = None


StreamItem = Event | EventsMissed


def is_terminal(item: StreamItem) -> bool:
    return item.type in TERMINAL_TYPES


def parse_event(event_type: str, data: str) -> StreamItem | None:
    """A frame's typed event; None for a type this client does not know (a newer server)."""
    if event_type == "events_missed":
        return EventsMissed.model_validate_json(data)
    if event_type in _KNOWN:
        return EVENT_ADAPTER.validate_json(data)
    return None


# The run event types, from the union itself (a type added above is known at once).
_KNOWN = frozenset(EVENT_ADAPTER.json_schema()["discriminator"]["mapping"])

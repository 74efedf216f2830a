"""A run's record: what clients read with GET /v1/runs/{id} (and, for a background task,
GET /v1/tasks/{id}), and the typed changes the services and the worker make to it.

One record type for every run: a foreground run (invoke, stream, WebSocket) has ``kind``
``run``; a background task is a run that a worker executes, ``kind`` ``task``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypedDict

from pydantic import AliasChoices, BaseModel, Field

from app.core.clock import utcnow
from app.llm.types import Usage

InputKind = Literal["text", "choice", "confirm"]
RunKind = Literal["run", "task"]

# pause_requested: the client asked for a pause and the run goes on to its next checkpoint;
# paused: the run waits at a checkpoint. A run that ends first never shows paused.
# incomplete: stopped at a token budget (error_code budget_exceeded), its output so far kept.
RunStatus = Literal[
    "queued",
    "running",
    "pause_requested",
    "paused",
    "input_required",
    "completed",
    "failed",
    "cancelled",
    "incomplete",
]
StatusSet = frozenset[RunStatus]
TERMINAL_STATUSES: StatusSet = frozenset({"completed", "failed", "cancelled", "incomplete"})
LIVE_STATUSES: StatusSet = frozenset({"running", "pause_requested", "paused", "input_required"})


class PendingInputInfo(BaseModel):
    request_id: str
    kind: InputKind
    prompt: str
    choices: list[str] | None = None


class RunAnswer(BaseModel):
    """A client's answer to an input request, waiting for the worker to deliver it."""

    request_id: str
    value: str | bool


class RunResult(BaseModel):
    # Records stored before the rename say final_answer.
    output: str = Field(validation_alias=AliasChoices("output", "final_answer"))
    reasoning: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    execution_time: float = 0.0


class RunRecord(BaseModel):
    id: str
    kind: RunKind = "task"  # records stored before foreground runs had one are tasks
    owner: str
    agent: str
    input: str | dict[str, Any]  # as the client sent it: text, or a JSON object
    session_id: str | None = None
    max_steps: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus = "queued"
    steps_taken: int = 0
    attempts: int = 0
    submitted_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    result: RunResult | None = None
    usage: Usage = Field(default_factory=Usage)  # so far (tasks: in the result)
    pending_input: PendingInputInfo | None = None
    worker: str | None = None
    holder: str | None = None  # the process holding the live run (app/agents/live_runs.py)
    # Requests from clients, applied by the worker that holds the task.
    cancel_requested: bool = False
    pause_requested: bool = False
    answer: RunAnswer | None = None
    # The submitting request's trace context (traceparent...), which the worker continues;
    # None when tracing is off (app/observability/tracing.py).
    trace_context: dict[str, str] | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class RunUpdate(TypedDict, total=False):
    """The fields a change may set; the status moves only through a backend transition."""

    steps_taken: int
    attempts: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime
    error_code: str
    error_message: str
    result: RunResult
    usage: Usage
    pending_input: PendingInputInfo | None
    worker: str
    holder: str | None
    cancel_requested: bool
    pause_requested: bool
    answer: RunAnswer | None


# A task's final status by the code of the error that ended it (anything else: failed).
TASK_ENDINGS: dict[str, RunStatus] = {"cancelled": "cancelled", "budget_exceeded": "incomplete"}


def kept_output(status: RunStatus, output: str, usage: Usage | None = None) -> RunUpdate:
    """An incomplete run's result: what it produced before its budget stopped it."""
    if status != "incomplete":
        return {}
    return {"result": RunResult(output=output, usage=usage or Usage())}


_JSON_FIELDS = ("params", "result", "usage", "pending_input", "answer", "trace_context")
# Fields whose None is stored ("" in Redis) and read back as None; any other empty field
# falls back to the model default.
_NULLABLE = frozenset(
    {
        "session_id",
        "max_steps",
        "started_at",
        "finished_at",
        "error_code",
        "error_message",
        "result",
        "pending_input",
        "worker",
        "answer",
        "trace_context",
    }
)


# An object input is kept as JSON in a field of its own: ``input`` stays plain text, as in
# records stored before inputs could be objects.
_OBJECT_INPUT = "input_json"


def to_fields(record: RunRecord) -> dict[str, str]:
    """Flatten a record for a Redis hash: nested values as JSON, None as ''."""
    data = record.model_dump(mode="json")
    if not isinstance(data["input"], str):
        data[_OBJECT_INPUT] = json.dumps(data.pop("input"), separators=(",", ":"))
    return _flatten(data)


def changes_to_fields(changes: RunUpdate) -> dict[str, str]:
    """Flatten a change the same way, stamping updated_at unless it sets one."""
    data: dict[str, Any] = {"updated_at": utcnow(), **changes}
    for key, value in data.items():
        if isinstance(value, BaseModel):
            data[key] = value.model_dump(mode="json")
    return _flatten(data)


def _flatten(data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        if value is None:
            out[key] = ""
        elif key in _JSON_FIELDS:
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "1" if value else "0"
        else:
            out[key] = str(value)
    return out


def from_fields(fields: dict[str, str]) -> RunRecord:
    data: dict[str, Any] = {}
    for key, value in fields.items():
        if value == "":
            data[key] = None
        elif key == _OBJECT_INPUT:
            data["input"] = json.loads(value)
        elif key in _JSON_FIELDS:
            data[key] = json.loads(value)
        elif key in ("cancel_requested", "pause_requested"):
            data[key] = value == "1"
        else:
            data[key] = value
    data = {k: v for k, v in data.items() if v is not None or k in _NULLABLE}
    return RunRecord.model_validate(data)

"""A task's record: what clients read with GET /v1/tasks/{id}."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.agents.events import InputKind
from app.core.clock import utcnow
from app.llm.types import Usage

TaskStatus = Literal[
    "queued", "running", "paused", "input_required", "completed", "failed", "cancelled"
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
LIVE_STATUSES: frozenset[str] = frozenset({"running", "paused", "input_required"})


class PendingInputInfo(BaseModel):
    request_id: str
    kind: InputKind
    prompt: str
    choices: list[str] | None = None


class TaskResult(BaseModel):
    final_answer: str
    reasoning: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    execution_time: float = 0.0


class TaskRecord(BaseModel):
    id: str
    owner: str
    agent: str
    input: str
    session_id: str | None = None
    max_steps: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    status: TaskStatus = "queued"
    steps_taken: int = 0
    attempts: int = 0
    submitted_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    result: TaskResult | None = None
    pending_input: PendingInputInfo | None = None
    worker: str | None = None
    # Requests from clients, applied by the worker that holds the task.
    cancel_requested: bool = False
    pause_requested: bool = False
    answer: dict[str, Any] | None = None  # {"request_id": ..., "value": ...}

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


_JSON_FIELDS = ("params", "result", "pending_input", "answer")
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
    }
)


def to_fields(record: TaskRecord | None = None, **changes: Any) -> dict[str, str]:
    """Flatten a record (or some fields) for a Redis hash: nested values as JSON, None as ''."""
    data = record.model_dump(mode="json") if record is not None else {}
    for key, value in changes.items():
        data[key] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
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


def from_fields(fields: dict[str, str]) -> TaskRecord:
    data: dict[str, Any] = {}
    for key, value in fields.items():
        if value == "":
            data[key] = None
        elif key in _JSON_FIELDS:
            data[key] = json.loads(value)
        elif key in ("cancel_requested", "pause_requested"):
            data[key] = value == "1"
        else:
            data[key] = value
    data = {k: v for k, v in data.items() if v is not None or k in _NULLABLE}
    return TaskRecord.model_validate(data)

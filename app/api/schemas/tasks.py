"""Bodies of the background task routes (the HTTP contract: docs/architecture.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.agents.protocol import AGENT_NAME_PATTERN
from app.api.schemas.agents import RunBody
from app.llm.types import Usage
from app.store.run_records import PendingInputInfo, RunStatus
from app.tasks.service import ControlAction


class TaskCreate(RunBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"agent": "assistant", "input": "What is 12*(3+4)?"},
                {
                    "agent": "approval",
                    "input": "Email the team that Friday's release moves to Monday.",
                },
                {
                    "agent": "chat",
                    "input": "Describe the sea in one sentence.",
                    "params": {"max_tokens": 64},
                },
            ]
        }
    )

    agent: str = Field(
        pattern=AGENT_NAME_PATTERN, description="A registered agent (GET /v1/agents)."
    )


class TaskSubmitted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task_id": "82dacf4dc9ef45df9dd54f74e59c33ce",
                    "status": "queued",
                    "submitted_at": "2026-11-29T22:09:29.905376Z",
                }
            ]
        }
    )

    task_id: str
    status: RunStatus
    submitted_at: datetime


class TaskPending(BaseModel):
    """GET /v1/tasks/{task_id}/result before the task has finished."""

    task_id: str
    status: RunStatus


class TaskInfo(BaseModel):
    task_id: str
    agent: str
    input: str | dict[str, Any] = Field(
        description="The input as submitted: text, or the object for an agent with an input "
        "model (the worker validates it against the model again when it runs the task)."
    )
    status: RunStatus
    session_id: str | None
    steps_taken: int
    attempts: int
    submitted_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    error_code: str | None
    error_message: str | None
    pending_input: PendingInputInfo | None
    cancel_requested: bool
    pause_requested: bool = Field(
        description="The client's standing pause request; status says whether it took effect."
    )


class TaskList(BaseModel):
    items: list[TaskInfo]
    total: int
    limit: int
    offset: int


class TaskResultResponse(BaseModel):
    task_id: str
    status: RunStatus
    success: bool
    output: str | None = Field(description="The agent's answer (null unless completed).")
    final_answer: str | None = Field(
        None,
        deprecated=True,
        description="The same value as output, under its old name; removed in the next version.",
    )
    reasoning: list[str]
    usage: Usage
    cached: bool = False
    execution_time: float = 0.0
    error_code: str | None = None
    error_message: str | None = None


class TaskControl(BaseModel):
    action: ControlAction = Field(
        description="pause: status pause_requested until the agent's next checkpoint, then "
        "paused (a task that ends first just ends); resume; stop (= cancel)."
    )


class TaskInput(BaseModel):
    request_id: str = Field(min_length=1, max_length=64)
    value: str | bool


class EventList(BaseModel):
    items: list[dict[str, Any]]
    total: int

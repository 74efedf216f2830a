"""Bodies of the background task routes (seed 004's task API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.agents import RunBody
from app.llm.types import Usage
from app.tasks.records import PendingInputInfo, TaskStatus


class TaskCreate(RunBody):
    agent: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TaskSubmitted(BaseModel):
    task_id: str
    status: TaskStatus
    submitted_at: datetime


class TaskInfo(BaseModel):
    task_id: str
    agent: str
    status: TaskStatus
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
    pause_requested: bool


class TaskList(BaseModel):
    items: list[TaskInfo]
    total: int
    limit: int
    offset: int


class TaskResultResponse(BaseModel):
    task_id: str
    status: TaskStatus
    success: bool
    final_answer: str | None
    reasoning: list[str]
    usage: Usage
    cached: bool = False
    execution_time: float = 0.0
    error_code: str | None = None
    error_message: str | None = None


class TaskControl(BaseModel):
    action: Literal["pause", "resume", "stop"]


class TaskInput(BaseModel):
    request_id: str = Field(min_length=1, max_length=64)
    value: str | bool


class EventList(BaseModel):
    items: list[dict[str, Any]]
    total: int

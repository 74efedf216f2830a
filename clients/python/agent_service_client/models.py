"""Typed answers of the calls a program branches on; others are returned as JSON dicts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from agent_service_client.events import Usage


class Invocation(BaseModel):
    """POST /v1/agents/{agent}/invoke."""

    model_config = ConfigDict(extra="allow")
    output: str
    session_id: str | None = None
    run_id: str
    usage: Usage = Usage()
    cached: bool = False
    execution_time: float = 0.0
    metadata: dict[str, Any] = {}


class TaskResult(BaseModel):
    """GET /v1/tasks/{task_id}/result once the task has finished."""

    model_config = ConfigDict(extra="allow")
    task_id: str
    status: str
    success: bool
    output: str | None = None
    usage: Usage = Usage()
    cached: bool = False
    execution_time: float = 0.0
    error_code: str | None = None
    error_message: str | None = None

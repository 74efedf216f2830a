"""A run as clients read it: the body of GET /v1/runs/{id}, and the ``data`` of the webhooks
that tell of a run's end or question (app/webhooks/), so both say the same thing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.llm.types import Usage
from app.store.run_records import PendingInputInfo, RunKind, RunRecord, RunStatus


class RunInfo(BaseModel):
    run_id: str
    kind: RunKind = Field(
        description="`run`: started by invoke, stream or a WebSocket; `task`: a background "
        "task (GET /v1/tasks/{task_id} has its task view)."
    )
    agent: str
    status: RunStatus
    session_id: str | None
    input: str | dict[str, Any] = Field(
        description="The input as sent: text, or the object for an agent with an input model."
    )
    steps_taken: int
    usage: Usage = Field(description="Tokens used by the run's LLM calls (final once it ended).")
    submitted_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    output: str | None = Field(description="The agent's answer, once completed.")
    cached: bool = Field(description="Every LLM call was answered from the cache.")
    execution_time: float | None = Field(description="Seconds the run took, once completed.")
    error_code: str | None
    error_message: str | None
    pending_input: PendingInputInfo | None = Field(
        description="The input request the run waits for (answer: POST /v1/runs/{id}/input)."
    )

    @classmethod
    def of(cls, record: RunRecord) -> RunInfo:
        result = record.result
        usage = result.usage if result is not None and record.kind == "task" else record.usage
        return cls(
            run_id=record.id,
            kind=record.kind,
            agent=record.agent,
            status=record.status,
            session_id=record.session_id,
            input=record.input,
            steps_taken=record.steps_taken,
            usage=usage,
            submitted_at=record.submitted_at,
            started_at=record.started_at,
            updated_at=record.updated_at,
            finished_at=record.finished_at,
            output=result.output if result is not None else None,
            cached=result.cached if result is not None else False,
            execution_time=result.execution_time if result is not None else None,
            error_code=record.error_code,
            error_message=record.error_message,
            pending_input=record.pending_input,
        )

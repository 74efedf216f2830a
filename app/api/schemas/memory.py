"""Response body of GET /v1/tasks/{task_id}/memory, a debugging aid."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.llm.types import ChatMessage


class MemorySummaryInfo(BaseModel):
    summary: str = Field(description="What the agent said it kept when it compacted its memory.")
    messages_summarized: int = Field(description="How many messages that summary replaced.")
    seq: int = Field(description="The `memory_summary` event's id in the task's event log.")


class TaskMemory(BaseModel):
    task_id: str
    session_id: str | None = Field(description="The session the task continues, if any.")
    messages: list[ChatMessage] = Field(
        description="The working messages, oldest first: the session history the run was "
        "given, the task's input (role `user`), then the run's own messages, tool calls "
        "(an `assistant` message with `tool_calls`) and tool results (role `tool`). Rebuilt "
        "from the session and the event log, so an agent's own system prompt is not shown."
    )
    summary: MemorySummaryInfo | None = Field(
        description="The last `memory_summary` event of the run, or null."
    )
    truncated: bool = Field(
        description="True when older messages are missing: the event log no longer keeps the "
        "run's first events, the session dropped messages the run was given, or the list was "
        "cut to its newest 500."
    )

"""Request and response bodies of the session routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.agents.protocol import AGENT_NAME_PATTERN as AGENT_NAME_PATTERN  # one rule, re-exported
from app.llm.types import ChatMessage


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(
        min_length=1,
        max_length=64,
        pattern=AGENT_NAME_PATTERN,
        description="Name of the agent this session talks to.",
        examples=["chat"],
    )


class SessionResponse(BaseModel):
    id: str = Field(description="Opaque session id; pass it as session_id when running an agent.")
    agent: str
    owner: str = Field(description="Principal that owns the session (user:<name> or key:<id>).")
    created_at: datetime
    updated_at: datetime
    message_count: int = Field(description="Messages currently kept in the history.")


class SessionList(BaseModel):
    items: list[SessionResponse]
    total: int = Field(description="All of the caller's live sessions.")
    limit: int
    offset: int


class MessageList(BaseModel):
    items: list[ChatMessage] = Field(description="History, oldest first.")
    total: int = Field(description="Messages kept in the history.")
    limit: int
    offset: int

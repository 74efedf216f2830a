"""Bodies of the agent, run and tool routes (contract: docs/architecture.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from app.agents.protocol import AgentCapabilities
from app.llm.types import Usage

ParamValue = str | int | float | bool | None

# Named request examples for invoke and stream, one per built-in agent (the agent is in the
# path: the summary says which one the example is for).
RUN_BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "chat": {
        "summary": "chat: a question, answered token by token",
        "value": {"input": "Hello! What can you do?"},
    },
    "chat_tuned": {
        "summary": "chat: with generation params",
        "value": {
            "input": "Describe the sea in one sentence.",
            "params": {"temperature": 0.2, "max_tokens": 64},
        },
    },
    "assistant": {
        "summary": "assistant: arithmetic through the calculator tool",
        "value": {"input": "What is 12*(3+4)?", "max_steps": 5},
    },
    "approval": {
        "summary": "approval: asks a human to choose and confirm (stream only)",
        "value": {"input": "Email the team that Friday's release moves to Monday."},
    },
}


class AgentInfo(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    capabilities: AgentCapabilities


class AgentList(BaseModel):
    items: list[AgentInfo]
    total: int


class RunBody(BaseModel):
    input: str = Field(min_length=1, description="The user's message (1..MAX_INPUT_CHARS).")
    session_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    params: dict[str, ParamValue] = Field(default_factory=dict, max_length=20)
    max_steps: int | None = Field(None, ge=1, le=100)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input must not be blank")
        return value


class InvokeResponse(BaseModel):
    output: str
    session_id: str | None
    run_id: str
    usage: Usage
    cached: bool
    execution_time: float
    metadata: dict[str, Any]


class RunInputBody(BaseModel):
    request_id: str = Field(min_length=1, max_length=64)
    value: str | bool = Field(description="confirm: true/false; choice: one of the choices; text.")


class Accepted(BaseModel):
    accepted: bool = True
    run_id: str


class ToolInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]


class ToolList(BaseModel):
    items: list[ToolInfo]
    total: int
    limit: int
    offset: int

"""What goes in and out of an LLM, independent of any provider's wire format."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(BaseModel):
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant messages that call tools
    tool_call_id: str | None = None  # tool messages answer one call
    name: str | None = None


class ToolSpec(BaseModel):
    """A tool offered to the model: name, description and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class LLMRequest(BaseModel):
    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    model: str | None = None  # None: the provider's configured model
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    # None: cache only deterministic requests (temperature 0); True/False: explicit choice.
    cache: bool | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class LLMResponse(BaseModel):
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: FinishReason = "stop"
    model: str = ""
    cached: bool = False


class LLMDelta(BaseModel):
    """A piece of streamed text, as the provider produced it."""

    kind: Literal["delta"] = "delta"
    text: str


class LLMFinal(BaseModel):
    """The last item of every stream: the whole answer, tool calls, usage, finish reason."""

    kind: Literal["final"] = "final"
    response: LLMResponse


LLMStreamItem = LLMDelta | LLMFinal

"""Wire shapes of POST /v1/chat/completions and GET /v1/models: the request body OpenAI's
clients send, and the answers they parse (held equal to the ``openai`` package's own types by
tests/unit/protocols/test_openai_wire.py; that package is a development dependency only, so
the service does not import it).

Extensions, which OpenAI's SDKs pass through (``extra_body=`` going in; attributes of the
parsed objects coming out): ``session_id`` in the body, ``agent_run`` on the completion.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.agents import MAX_TOKENS_PARAM_LIMIT
from app.llm.types import Usage
from app.protocols.openai.messages import OpenAIMessage


class ChatStreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = Field(False, strict=True)


class ChatCompletionRequest(BaseModel):
    """OpenAI's body. Parameters an agent run has no use for (``top_p``, ``stop``, ``seed``,
    ``user``, ``metadata``, ...) are accepted and ignored; those whose meaning we cannot keep
    (client-side ``tools``, ``n`` > 1) are refused with a 400."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="The agent's name (GET /v1/models).")
    messages: list[OpenAIMessage] = Field(
        min_length=1,
        description="The conversation: the last message is the user's turn (the run's input), "
        "the earlier ones its history.",
    )
    stream: bool | None = Field(False, strict=True)  # "yes" is a 400, not True
    stream_options: ChatStreamOptions | None = None
    # strict: a JSON true or "1" is a 400, not a number (as the schema says).
    temperature: float | None = Field(None, ge=0, le=2, strict=True)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_PARAM_LIMIT, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_PARAM_LIMIT, strict=True)
    # What the schema says is what is accepted: these are refused with OpenAI's 400
    # (unsupported_parameter), not by validation, so only the schema carries the bounds.
    n: int | None = Field(
        None,
        description="Only 1: an agent run has one answer.",
        json_schema_extra={"minimum": 1, "maximum": 1},
    )
    tools: list[Any] | None = Field(
        None,
        description="Not supported (empty or absent): the agent calls its own tools.",
        json_schema_extra={"maxItems": 0},
    )
    functions: list[Any] | None = Field(
        None, description="Not supported (empty or absent).", json_schema_extra={"maxItems": 0}
    )
    # Extension: continue a session of the caller's (its history instead of `messages`').
    session_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="Extension (send it with the SDK's extra_body): a session of the caller's "
        "for this agent. The run sees the session's history and the exchange is appended to "
        "it; `messages` then holds only the new user message.",
    )

    def run_params(self) -> dict[str, float | int]:
        """The generation settings an agent reads from its run's params (chat's)."""
        params: dict[str, float | int] = {}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        limit = self.max_completion_tokens or self.max_tokens
        if limit is not None:
            params["max_tokens"] = limit
        return params


class AgentStep(BaseModel):
    """A tool call the agent made itself, on the server, or its result: the run's own event
    (docs/architecture.md#events). Never for the client to execute."""

    model_config = ConfigDict(extra="allow")

    type: Literal["tool_call", "tool_result"]
    id: str
    seq: int


class AgentRun(BaseModel):
    """Extension: the run behind the completion (GET /v1/runs/{id}, its events at GET
    /v1/runs/{id}/events) and the tool calls the agent made on the way."""

    id: str = Field(description="The run's id.")
    session_id: str | None = Field(description="The session the exchange was saved to, if any.")
    steps: list[AgentStep] = Field(
        default_factory=list, description="tool_call and tool_result events, in order."
    )


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None
    annotations: list[Any] = Field(default_factory=list)


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    logprobs: None = None
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(BaseModel):
    id: str = Field(description="chatcmpl-<run id>.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage
    system_fingerprint: None = None
    agent_run: AgentRun


class OpenAIModel(BaseModel):
    id: str = Field(description="The agent's name.")
    object: Literal["model"] = "model"
    created: int = Field(description="When this server process started (Unix seconds).")
    owned_by: str = "agent-service"
    description: str = Field(description="Extension: the agent's description.")


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]

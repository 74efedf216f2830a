"""Bodies of the agent, run and tool routes (contract: docs/architecture.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from app.agents.protocol import AgentCapabilities
from app.agents.sessions import SESSION_ID_PATTERN
from app.llm.types import Usage

ParamValue = str | int | float | bool | None
# The most tokens a caller may ask one LLM call for (params.max_tokens): an unbounded value is
# passed to the provider as is, and bills (or occupies a self-hosted model) accordingly.
MAX_TOKENS_PARAM_LIMIT = 32_768

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


def _text_or_object(value: Any) -> str | dict[str, Any]:
    """One error that names the field (a plain union would report each of its branches)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("text_or_object_type", "Input should be a string or an object")
    if not value:
        raise PydanticCustomError(
            "string_too_short", "String should have at least 1 character", {"min_length": 1}
        )
    if not value.strip():
        raise ValueError("input must not be blank")
    return value


# The run input: text, or (for an agent with an input model) a JSON object; which one an agent
# takes, and the object's fields, are checked against the agent (app/api/run_requests.py).
RunInput = Annotated[
    str | dict[str, Any],
    PlainValidator(_text_or_object),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1}, {"type": "object"}]}),
]


class AgentInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "assistant",
                    "description": "Answers using tools (calculator, current_time) in a loop "
                    "of steps.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"input": {"type": "string", "minLength": 1}},
                        "required": ["input"],
                    },
                    "capabilities": {"streaming": True, "human_input": False, "tools": True},
                }
            ]
        }
    )

    name: str = Field(description="The agent's name, as used in /v1/agents/{agent}/...")
    description: str
    input_schema: dict[str, Any] = Field(
        description="JSON Schema of the run body's `input`: a string, or for an agent with an "
        "input model, an object with the model's fields."
    )
    capabilities: AgentCapabilities = Field(
        description="human_input: may send input_required (not usable with invoke); "
        "tools: calls the registered tools."
    )


class AgentList(BaseModel):
    items: list[AgentInfo]
    total: int


class RunBody(BaseModel):
    input: RunInput = Field(
        description="The user's message (1..MAX_INPUT_CHARS), or, for an agent whose "
        "input_schema describes an object, that object (its JSON at most MAX_INPUT_CHARS)."
    )
    session_id: str | None = Field(
        None,
        pattern=SESSION_ID_PATTERN,
        description="A session of the caller's for this agent (POST /v1/sessions): the run "
        "sees its history and the exchange is appended to it.",
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        max_length=20,
        description="Agent-specific settings, e.g. chat's temperature (0-2) and max_tokens "
        f"(1-{MAX_TOKENS_PARAM_LIMIT}).",
    )
    # strict: the schema says integer/boolean, so "5" or 0 is a 422, not silently coerced.
    max_steps: int | None = Field(
        None, ge=1, le=100, strict=True, description="Step budget of the run (default MAX_STEPS)."
    )

    @field_validator("params")
    @classmethod
    def _bounded_max_tokens(cls, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        if "max_tokens" not in params:
            return params
        value = params["max_tokens"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= MAX_TOKENS_PARAM_LIMIT
        ):
            raise ValueError(f"params.max_tokens must be an integer 1..{MAX_TOKENS_PARAM_LIMIT}")
        return params


class AgentRunBody(RunBody):
    """A foreground run's body (invoke, stream, WebSocket start): the run options on top."""

    session_id: str | None = Field(
        None,
        pattern=SESSION_ID_PATTERN,
        description="A session of the caller's for this agent: the run sees its history and "
        "the exchange is appended to it. Without one, a new session is started and its id "
        "returned (continue the conversation with it), unless `store` is false.",
    )
    store: bool = Field(
        True,
        strict=True,
        description="false: run statelessly, with no session and no history written (the run's "
        "own record and event log are kept as every run's).",
    )
    on_disconnect: Literal["cancel", "continue"] = Field(
        "cancel",
        description="What happens when the client that started the run goes away: `cancel` "
        "stops it; `continue` lets it run on (within its deadline, step budget and input "
        "timeout): follow it again with GET /v1/runs/{run_id}/events.",
    )
    if_busy: Literal["reject", "enqueue", "interrupt", "rollback"] = Field(
        "reject",
        description="When another run is using the session: `reject` answers 409 "
        "session_busy; `enqueue` runs after it (in arrival order); `interrupt` cancels it, "
        "keeping what it produced in the history, and runs next; `rollback` cancels it and "
        "drops its exchange. Waits at most SESSION_BUSY_WAIT_SECONDS.",
    )


class InvokeResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "output": "The result is 84.",
                    "session_id": None,
                    "run_id": "2f656045d1de45fe8c45e15130a6abc6",
                    "usage": {"prompt_tokens": 57, "completion_tokens": 7, "total_tokens": 64},
                    "cached": False,
                    "execution_time": 0.0582,
                    "metadata": {"agent": "assistant", "steps": 2, "llm_calls": 2},
                }
            ]
        }
    )

    output: str = Field(description="The agent's final answer.")
    session_id: str | None
    run_id: str
    usage: Usage = Field(description="Tokens used by every LLM call of the run.")
    cached: bool = Field(description="Every LLM call was answered from the cache.")
    execution_time: float = Field(description="Seconds the run took.")
    metadata: dict[str, Any] = Field(description="agent, steps taken, LLM calls made.")


class RunInputBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"request_id": "7d0e5b3c2a914f6e8b1c0d2e3f4a5b6c", "value": "high"},
                {"request_id": "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b", "value": True},
            ]
        }
    )

    request_id: str = Field(
        min_length=1, max_length=64, description="The `request_id` of the input_required event."
    )
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

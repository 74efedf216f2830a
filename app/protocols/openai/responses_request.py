"""A Responses create body -> what our runs take: the agent's input, its history, an answer.

Parsed here rather than by FastAPI so that a bad body is OpenAI's 400 naming the field
(``param``), as the SDKs expect. ``input`` is a string or a list of input items: messages
(``{"role", "content"}`` with or without ``"type": "message"``, text content only) and
``mcp_approval_response`` items (the answer to a question the agent asked). What our runs
cannot take is refused with a 400, never dropped: images and files, client-side tools,
structured output formats, function call outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.config import JsonDict

from app.llm.types import ChatMessage, Role
from app.protocols.openai.errors import InvalidRequest

_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",  # OpenAI's newer name for the system role
}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
MAX_INPUT_ITEMS = 1000
# The input items _item takes, for the schema (the rules no schema states, such as "the last
# item is the user's", are OpenAI's 400 like any other refusal).
_TEXT_PART_SCHEMA: JsonDict = {
    "type": "object",
    "properties": {"type": {"enum": list(sorted(_TEXT_PARTS))}, "text": {"type": "string"}},
    "required": ["type", "text"],
}
_MESSAGE_ITEM_SCHEMA: JsonDict = {
    "type": "object",
    "properties": {
        "type": {"const": "message"},
        "role": {"enum": list(_ROLES)},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART_SCHEMA}]},
    },
    "required": ["role", "content"],
}
_APPROVAL_ITEM_SCHEMA: JsonDict = {
    "type": "object",
    "properties": {
        "type": {"const": "mcp_approval_response"},
        "approval_request_id": {"type": "string"},
        "approve": {"type": "boolean"},
    },
    "required": ["type", "approval_request_id", "approve"],
}


class ResponseCreateRequest(BaseModel):
    """The subset of OpenAI's ``POST /responses`` body an agent run takes. ``model`` names
    the agent. Fields listed as accepted for compatibility change nothing."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256, description="The agent's name.")
    input: str | list[dict[str, Any]] = Field(
        description="The user's text, or input items: messages (text content) and "
        "mcp_approval_response items answering the agent's question.",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "pattern": r"\S"},
                {
                    "type": "array",
                    "items": {"anyOf": [_MESSAGE_ITEM_SCHEMA, _APPROVAL_ITEM_SCHEMA]},
                    "minItems": 1,
                    "maxItems": MAX_INPUT_ITEMS,
                },
            ]
        },
    )
    instructions: str | None = Field(
        None, max_length=32_768, description="A system message for this response only."
    )
    stream: bool = False
    background: bool = Field(False, description="Run as a background task (survives clients).")
    store: bool = Field(True, description="False: no session, the response is not kept.")
    previous_response_id: str | None = Field(
        None, max_length=128, description="Continue this response's conversation."
    )
    metadata: dict[str, str] | None = Field(
        None,
        description="Up to 16 pairs, echoed back.",
        json_schema_extra={
            "maxProperties": 16,
            "propertyNames": {"maxLength": 64},
            "additionalProperties": {"type": "string", "maxLength": 512},
        },
    )
    # strict: a JSON true or "1" is a 400, not a number (as the schema says).
    temperature: float | None = Field(None, ge=0, le=2, strict=True)
    max_output_tokens: int | None = Field(None, ge=1, le=32_768, strict=True)
    # Accepted for compatibility (sent by SDKs and frameworks); no effect on an agent run.
    include: list[str] | None = None
    parallel_tool_calls: bool | None = None
    truncation: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    stream_options: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    # Refused by the validators below unless as the schema says (an OpenAI 400 each).
    tool_choice: str | dict[str, Any] | None = Field(
        None,
        description="Only 'auto' or 'none': the agent chooses its tools.",
        json_schema_extra={"anyOf": [{"enum": ["auto", "none"]}, {"type": "null"}]},
    )
    tools: list[dict[str, Any]] | None = Field(
        None,
        description="Not supported (empty or absent): the agent runs its own tools.",
        json_schema_extra={"maxItems": 0},
    )

    @field_validator("input")
    @classmethod
    def _some_input(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("input must not be empty")
        if isinstance(value, list) and not 1 <= len(value) <= MAX_INPUT_ITEMS:
            raise ValueError(f"input must hold 1 to {MAX_INPUT_ITEMS} items")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_bounds(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and (
            len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items())
        ):
            raise ValueError("at most 16 pairs, keys up to 64 and values up to 512 characters")
        return value

    @field_validator("tools")
    @classmethod
    def _no_client_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError(
                "client-side tools are not supported: the agent runs its own tools on the "
                "server (they appear as mcp_call output items)"
            )
        return value

    @field_validator("tool_choice")
    @classmethod
    def _no_forced_tool(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if value not in (None, "auto", "none"):
            raise ValueError("only 'auto' or 'none' (the agent chooses its tools)")
        return value

    @field_validator("text")
    @classmethod
    def _plain_text(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        text_format = (value or {}).get("format")
        if isinstance(text_format, dict) and text_format.get("type", "text") != "text":
            raise ValueError("only the 'text' format is supported (no structured outputs)")
        return value

    def run_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_output_tokens is not None:
            params["max_tokens"] = self.max_output_tokens
        return params


def parse_body(raw: bytes) -> ResponseCreateRequest:
    """The body, or a 400 ``validation_error`` whose ``param`` is the first bad field."""
    try:
        return ResponseCreateRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_input=False, include_url=False)
        ]
        first = errors[0]
        # A union's branches add their own names (str, list[...]) to the location.
        first["loc"] = [part for part in first["loc"] if part not in ("str", "list[dict[str,any]]")]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "json_invalid" or not raw.strip():
            detail = "The body must be a JSON object (Content-Type: application/json)."
        elif first["type"] == "extra_forbidden":
            detail = f"Unknown parameter: '{where}'."
        else:
            detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise InvalidRequest(detail, code="validation_error", errors=errors) from None


@dataclass(frozen=True, slots=True)
class Approval:
    """An ``mcp_approval_response`` item: the answer to a confirm question."""

    item_id: str
    approve: bool
    index: int


InputItem = ChatMessage | Approval


def parse_items(body: ResponseCreateRequest) -> list[InputItem]:
    """``input`` as items: a string is one user message."""
    if isinstance(body.input, str):
        return [ChatMessage(role="user", content=body.input)]
    return [_item(raw, index) for index, raw in enumerate(body.input)]


def _item(raw: dict[str, Any], index: int) -> InputItem:
    kind = raw.get("type", "message")
    if kind == "mcp_approval_response":
        request_id, approve = raw.get("approval_request_id"), raw.get("approve")
        if not isinstance(request_id, str) or not isinstance(approve, bool):
            raise InvalidRequest(
                f"input[{index}]: an mcp_approval_response needs approval_request_id (a "
                "string) and approve (true or false).",
                param=("input", index),
            )
        return Approval(request_id, approve, index)
    if kind != "message":
        raise InvalidRequest(
            f"input[{index}]: items of type {kind!r} are not supported; send messages, or an "
            "mcp_approval_response answering the agent's question.",
            param=("input", index, "type"),
            code="unsupported_input_item",
        )
    role = raw.get("role")
    if not isinstance(role, str) or role not in _ROLES:  # a dict is no key: never a 500
        raise InvalidRequest(
            f"input[{index}].role must be one of user, assistant, system, developer.",
            param=("input", index, "role"),
        )
    return ChatMessage(role=_ROLES[role], content=_text(raw.get("content"), index))


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(
            f"input[{index}].content must be a string or a list of text parts.",
            param=("input", index, "content"),
        )
    texts: list[str] = []
    for n, part in enumerate(content):
        text = part.get("text") if isinstance(part, dict) else None
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in _TEXT_PARTS or text is None:
            kind = kind if isinstance(part, dict) else type(part).__name__
            raise InvalidRequest(
                f"input[{index}].content[{n}]: only text parts are supported (got {kind!r}).",
                param=("input", index, "content", n),
                code="unsupported_content",
            )
        texts.append(str(text))
    return "".join(texts)


def new_run_input(items: list[InputItem], *, history_limit: int) -> tuple[str, list[ChatMessage]]:
    """(the run's input: the last user message, the messages before it). An answer to a
    question has nothing to answer here: 400."""
    for item in items:
        if isinstance(item, Approval):
            raise InvalidRequest(
                f"input[{item.index}]: this mcp_approval_response answers no question: "
                "send it with previous_response_id naming the response that asked.",
                param=("input", item.index),
            )
    messages = [item for item in items if isinstance(item, ChatMessage)]
    last = messages[-1]
    if last.role != "user" or not (last.content or "").strip():
        raise InvalidRequest(
            "The last input item must be a user message with text: it is the agent's input.",
            param=("input",),
        )
    return last.content or "", messages[:-1][-history_limit:]


def answer_of(items: list[InputItem], question_item_id: str) -> str | bool:
    """The answer to the question a response ended with: an ``mcp_approval_response``
    naming it (approve), else the text of the last user message."""
    last = items[-1]
    if isinstance(last, Approval):
        if last.item_id != question_item_id:
            raise InvalidRequest(
                f"input[{last.index}].approval_request_id: the previous response asks "
                f"{question_item_id!r}.",
                param=("input", last.index, "approval_request_id"),
                code="input_request_not_found",
            )
        return last.approve
    if last.role != "user" or not (last.content or "").strip():
        raise InvalidRequest(
            "The answer must be the last input item: a user message with text, or an "
            "mcp_approval_response.",
            param=("input",),
        )
    return last.content or ""

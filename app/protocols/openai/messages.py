"""OpenAI chat messages -> a run's input and history.

The last message is the user's turn (the run's input); the ones before it are the
conversation so far (RunRequest.history, in place of a session's). What our runs cannot
take is refused with a 400 naming the message, never dropped silently: a non-text content
part (image, audio, file), a tool call whose arguments are not a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.llm.types import ChatMessage, Role, ToolCall
from app.protocols.openai.errors import InvalidRequest


class OpenAITextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class OpenAIFunctionCall(BaseModel):
    name: str
    arguments: str = "{}"


class OpenAIToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"] = "function"
    function: OpenAIFunctionCall


class OpenAIMessage(BaseModel):
    """One message as OpenAI's Chat Completions API takes it (fields we do not use are kept
    out of the way, not refused: ``refusal``, ``audio``, ``annotations``)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[OpenAITextPart] | None = None
    name: str | None = Field(None, max_length=256)
    tool_calls: list[OpenAIToolCall] | None = None
    tool_call_id: str | None = None


_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",  # OpenAI's newer name for the system role
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def message_text(message: OpenAIMessage, index: int) -> str | None:
    """The text of a message: its string, or its text parts joined."""
    content = message.content
    if content is None or isinstance(content, str):
        return content
    texts: list[str] = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise InvalidRequest(
                f"messages[{index}].content[{part_index}]: only text parts are supported "
                f"(got {part.type!r}).",
                param=("messages", index, "content", part_index),
                code="unsupported_content",
            )
        texts.append(part.text)
    return "".join(texts)


def to_chat_message(message: OpenAIMessage, index: int) -> ChatMessage:
    calls = None
    if message.tool_calls:
        calls = [_tool_call(call, index, n) for n, call in enumerate(message.tool_calls)]
    return ChatMessage(
        role=_ROLES[message.role],
        content=message_text(message, index),
        tool_calls=calls,
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def _tool_call(call: OpenAIToolCall, index: int, n: int) -> ToolCall:
    try:
        arguments: Any = json.loads(call.function.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"messages[{index}].tool_calls[{n}].function.arguments must be a JSON object.",
            param=("messages", index, "tool_calls", n, "function", "arguments"),
        )
    return ToolCall(id=call.id, name=call.function.name, arguments=arguments)


def split_conversation(
    messages: Sequence[OpenAIMessage], *, history_limit: int
) -> tuple[str, list[ChatMessage]]:
    """(the last user message's text, the messages before it as history). The history keeps
    the last ``history_limit`` messages, as a session would (SESSION_MAX_MESSAGES), without
    a leading tool answer whose call was cut off."""
    if not messages:
        raise InvalidRequest("messages must hold at least one message.", param=("messages",))
    last = len(messages) - 1
    if messages[last].role != "user":
        raise InvalidRequest(
            f"The last message must be the user's (got role {messages[last].role!r}): it is "
            "the input of the agent's run.",
            param=("messages", last, "role"),
        )
    text = message_text(messages[last], last)
    if text is None or not text.strip():
        raise InvalidRequest(
            "The last user message has no text.", param=("messages", last, "content")
        )
    first = max(0, last - history_limit)
    history = [to_chat_message(messages[i], i) for i in range(first, last)]
    while history and history[0].role == "tool":
        history.pop(0)
    return text, history

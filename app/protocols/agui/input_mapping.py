"""AG-UI's RunAgentInput onto our run: which message is the input, which are the history, and
what becomes of state, context, tools and forwarded props.

- The last message is the run's input and must be the user's (text parts joined; media parts
  are not read). A resume (``resume``) needs no new message: the run it answers goes on.
- The messages before it are the history (RunRequest.history) when there are any: AG-UI
  clients hold the conversation and send all of it each run, so theirs wins over what the
  thread (our session) remembers. A client that sends only the new message gets the thread's
  history, as our own routes do.
- ``context`` entries become one system message at the start of the history.
- ``state`` (a non-empty value) is kept with the thread as the agent's state ``ag-ui`` (JSON),
  which an agent reads with ``await ctx.state.load("ag-ui")``.
- ``forwardedProps.params``, ``.maxSteps`` and ``.onDisconnect`` (``cancel``, the default, or
  ``continue``: the run goes on when the stream is lost, for a client that reconnects) are the
  native run body's ``params``, ``max_steps`` and ``on_disconnect``, checked as there.
  Everything else in it is ignored.
- ``tools`` are ignored: client-side tools are not executed here; agents use the server's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    Context,
    DeveloperMessage,
    Message,
    RunAgentInput,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from pydantic import ValidationError

from app.agents.sessions import SESSION_ID
from app.api.schemas.agents import AgentRunBody
from app.core.errors import Unprocessable
from app.llm.types import ChatMessage, ToolCall

STATE_NAME = "ag-ui"  # ctx.state name of the client's AG-UI state


def invalid(field: str, message: str) -> Unprocessable:
    """422 ``validation_error`` naming the RunAgentInput field (camelCase, as sent)."""
    return Unprocessable(
        f"{field}: {message}",
        code="validation_error",
        extensions={
            "errors": [{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}]
        },
    )


def check_thread_id(thread_id: str) -> None:
    if SESSION_ID.fullmatch(thread_id) is None:
        raise invalid("threadId", "1 to 64 characters: letters, digits, '-' and '_'")


def text_of(content: str | list[Any] | None) -> str:
    """A message's text: the string, or its text parts joined (media parts are not read)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def _tool_calls(message: AssistantMessage) -> list[ToolCall] | None:
    calls: list[ToolCall] = []
    for call in message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = {}
        calls.append(
            ToolCall(
                id=call.id,
                name=call.function.name,
                arguments=arguments if isinstance(arguments, dict) else {},
            )
        )
    return calls or None


def chat_message(message: Message) -> ChatMessage | None:
    """One AG-UI message as the LLM sees it; activity and reasoning messages are dropped."""
    if isinstance(message, UserMessage):
        return ChatMessage(role="user", content=text_of(message.content))
    if isinstance(message, AssistantMessage):
        return ChatMessage(
            role="assistant", content=message.content, tool_calls=_tool_calls(message)
        )
    if isinstance(message, SystemMessage | DeveloperMessage):
        return ChatMessage(role="system", content=message.content)
    if isinstance(message, ToolMessage):
        return ChatMessage(
            role="tool", content=text_of(message.content), tool_call_id=message.tool_call_id
        )
    return None


def context_message(context: list[Context] | None) -> ChatMessage | None:
    if not context:
        return None
    lines = [f"- {entry.description}: {entry.value}" for entry in context]
    return ChatMessage(role="system", content="Context from the application:\n" + "\n".join(lines))


@dataclass(frozen=True, slots=True)
class MappedInput:
    text: str  # the user's message: the run's input
    history: list[ChatMessage] | None  # None: the thread's own
    context: ChatMessage | None  # to put first in the history
    body: AgentRunBody  # the native body the input, params and max_steps were checked as
    state: bytes | None  # the client's state, as JSON, to keep with the thread


def map_input(agui: RunAgentInput, *, max_context_chars: int) -> MappedInput:
    """The run a (non-resume) RunAgentInput asks for. Raises 422 ``validation_error``."""
    check_thread_id(agui.thread_id)
    if not agui.messages or not isinstance(agui.messages[-1], UserMessage):
        raise invalid("messages", "the last message must be the user's (role user)")
    text = text_of(agui.messages[-1].content)
    if not text.strip():
        raise invalid("messages", "the last user message has no text")
    earlier = [m for m in (chat_message(m) for m in agui.messages[:-1]) if m is not None]
    context = context_message(agui.context)
    if context is not None and len(context.content or "") > max_context_chars:
        raise invalid("context", f"at most {max_context_chars} characters in all")
    props = agui.forwarded_props if isinstance(agui.forwarded_props, dict) else {}
    body_fields: dict[str, Any] = {"input": text}
    if "params" in props:
        body_fields["params"] = props["params"]
    if "maxSteps" in props:
        body_fields["max_steps"] = props["maxSteps"]
    if "onDisconnect" in props:
        body_fields["on_disconnect"] = props["onDisconnect"]
    try:
        body = AgentRunBody.model_validate(body_fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = {
            "input": "messages",
            "max_steps": "forwardedProps.maxSteps",
            "on_disconnect": "forwardedProps.onDisconnect",
        }
        field = where.get(str(first["loc"][0]), "forwardedProps.params")
        raise invalid(field, str(first["msg"])) from None
    state = None
    if agui.state not in (None, {}, [], ""):
        state = json.dumps(agui.state, separators=(",", ":")).encode()
        if len(state) > max_context_chars:
            raise invalid("state", f"at most {max_context_chars} characters of JSON")
    return MappedInput(text=text, history=earlier or None, context=context, body=body, state=state)

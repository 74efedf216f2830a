"""A session's conversation as a Pydantic AI agent sees it.

The agent's own ModelMessage list is kept in the session's framework state (``ctx.state``),
so tool calls and their results survive between runs exactly as the framework recorded them.
Without one stored (a session started by another agent, or state that expired), the
session's plain history (``ctx.history``) stands in: its text turns only.
"""

from __future__ import annotations

import pydantic
import structlog
from pydantic_ai import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    UserPromptPart,
)

from app.agents.context import RunContext
from app.llm.types import ChatMessage

log = structlog.get_logger(__name__)

STATE_NAME = "pydantic_ai.messages"


async def load_history(ctx: RunContext) -> list[ModelMessage]:
    if ctx.state is not None:
        stored = await ctx.state.load(STATE_NAME)
        if stored is not None:
            try:
                return ModelMessagesTypeAdapter.validate_json(stored)
            except pydantic.ValidationError:
                # Written by a Pydantic AI version that reads it differently: carry on from
                # the session's text history rather than fail every run of the session.
                log.warning("pydantic_ai_history_unreadable", run_id=ctx.run_id)
    return from_chat(ctx.history)


async def save_history(ctx: RunContext, messages: list[ModelMessage]) -> None:
    if ctx.state is not None:
        await ctx.state.save(STATE_NAME, ModelMessagesTypeAdapter.dump_json(messages))


def from_chat(history: list[ChatMessage]) -> list[ModelMessage]:
    """The text turns of a session's history as model messages. Tool turns are left out: a
    call without its result (or the reverse) would be refused by the model."""
    messages: list[ModelMessage] = []
    for message in history:
        if not message.content:
            continue
        if message.role == "user":
            messages.append(ModelRequest(parts=[UserPromptPart(content=message.content)]))
        elif message.role == "system":
            messages.append(ModelRequest(parts=[SystemPromptPart(content=message.content)]))
        elif message.role == "assistant":
            messages.append(ModelResponse(parts=[TextPart(content=message.content)]))
    return messages

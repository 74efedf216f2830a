"""chat: an LLM conversation with session memory, streamed token by token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent
from app.agents.registry import agent
from app.agents.streaming import StreamedCall, generation_params
from app.llm.types import ChatMessage, LLMRequest

SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and briefly."


@agent(
    name="chat",
    description="Chat with the LLM; remembers the session's history. "
    "params: temperature (0-2), max_tokens.",
)
async def chat(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    step = ctx.begin_step()
    started = time.monotonic()
    messages = [
        ChatMessage(role="system", content=SYSTEM_PROMPT),
        *ctx.history,
        ChatMessage(role="user", content=input),
    ]
    call = StreamedCall(ctx, LLMRequest(messages=messages, **generation_params(ctx.params)))
    async for event in call:
        yield event
    yield MessageEvent(role="assistant", content=call.response.content)
    await ctx.step_done(step, started)

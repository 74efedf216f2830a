"""Agents a team would ship in its own package, served through the AGENTS setting."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent, TokenEvent
from app.agents.registry import agent


@agent(name="shouter", description="Repeats the input in capitals, word by word.")
async def shouter(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    ctx.begin_step()
    for word in input.upper().split():
        yield TokenEvent(text=word + " ")
    yield MessageEvent(content=input.upper())


not_an_agent = object()


# The README's example, kept here so a test proves it works as printed.
@agent(
    name="support", description="Drafts a support reply and sends it if approved.", human_input=True
)
async def support(input, ctx):  # type: ignore[no-untyped-def]
    from app.llm.types import ChatMessage, LLMRequest

    await ctx.checkpoint()  # pause point for background tasks
    ctx.begin_step()  # counts against max_steps
    request = LLMRequest(messages=[*ctx.history, ChatMessage(role="user", content=input)])
    draft = await ctx.llm.complete(request)  # cached, metered, cancellable
    if await ctx.ask(f"Send this reply? {draft.content}", kind="confirm"):
        yield MessageEvent(content=draft.content)
    else:
        yield MessageEvent(content="Not sent.")

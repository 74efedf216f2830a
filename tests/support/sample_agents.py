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

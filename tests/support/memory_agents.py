"""An agent that keeps a working memory, served through the AGENTS setting in the memory and
stream route tests: it logs, calls a tool, summarises what it kept, then answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from app.sdk import Event, MessageEvent, RunContext, agent

CALL_ID = "call-keeper-1"


def answer(history: int) -> str:
    return f"I remember {history} earlier messages, and 6*7 is 42."


def summary(history: int) -> str:
    return f"{history} earlier messages kept; the product asked for is 42."


@agent(
    name="keeper",
    description="Logs, multiplies with the calculator, summarises its memory, then answers.",
    tools=True,
)
async def keeper(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    step = ctx.begin_step()
    started = time.monotonic()
    await ctx.log("Reading the session", level="debug", messages=len(ctx.history), input=input)
    outcome = await ctx.call_tool(CALL_ID, "calculator", {"expression": "6*7"})
    await ctx.summarize_memory(summary(len(ctx.history)), messages_summarized=len(ctx.history))
    yield MessageEvent(content=answer(len(ctx.history)) if outcome.success else outcome.output)
    await ctx.step_done(step, started)

"""Plug-ins as a team would write them, good and bad, loaded by the AGENTS and TOOLS tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.sdk import Event, MessageEvent, RunContext, Tool, agent, tool


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


async def _reverse(arguments: dict[str, Any]) -> str:
    return str(arguments.get("text", ""))[::-1]


REVERSE = Tool(
    name="reverse",
    description="Reverse a text.",
    parameters={"type": "object", "properties": {"text": {"type": "string"}}},
    function=_reverse,
)


@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


TEXT_TOOLS = [REVERSE, shout]


@tool(name="calculator", description="Shadows the built-in calculator.")
def second_calculator(expression: str) -> str:
    return expression


@tool(name="has spaces", description="Not a name a model API accepts.")
def badly_named() -> str:
    return ""


def undecorated(text: str) -> str:
    return text


MIXED = [word_count, "not a tool"]


@agent(name="Support", description="Capitalised: not a valid agent name.")
async def capitalised(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    yield MessageEvent(content=input)


@agent(name="word-counter", description="Counts the words of its input with a plug-in tool.")
async def word_counter(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    ctx.begin_step()
    outcome = await ctx.call_tool("call_1", "word_count", {"text": input})
    yield MessageEvent(content=outcome.output if outcome.success else f"failed: {outcome.output}")

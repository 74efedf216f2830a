"""Agents that show what a run was given, served through the AGENTS setting by the OpenAI
compatibility tests (tests/integration/test_openai_chat*.py, tests/e2e/test_openai_chat.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from app.sdk import Event, MessageEvent, RunContext, RunFailure, TokenEvent, agent


@agent(name="recall", description="Answers with the history, input and params it was given.")
async def recall(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    seen = {
        "input": input,
        "history": [
            {
                "role": message.role,
                "content": message.content,
                "name": message.name,
                "tool_call_id": message.tool_call_id,
                "tool_calls": [call.model_dump() for call in message.tool_calls or []],
            }
            for message in ctx.history
        ],
        "params": ctx.params,
    }
    text = json.dumps(seen, sort_keys=True)
    # Streamed in pieces, quotes and escapes included: the chunks must join back to the text.
    for start in range(0, len(text), 7):
        yield TokenEvent(text=text[start : start + 7])
    yield MessageEvent(content=text)


@agent(name="refuser", description="Fails every run with a code of its own.")
async def refuser(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    yield TokenEvent(text="Let me see... ")
    raise RunFailure("This request cannot be served.", code="request_refused")


AGENTS = ["tests.support.openai_agents:recall", "tests.support.openai_agents:refuser"]

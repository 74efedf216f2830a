"""Agents a team would ship in its own package, served through the AGENTS setting.

The first part is the README's example, character for character
(tests/unit/agents/test_sdk.py keeps them equal), so a test proves it works as printed.
"""

from collections.abc import AsyncIterator

from app.sdk import ChatMessage, Event, LLMRequest, MessageEvent, RunContext, agent


@agent(
    name="support", description="Drafts a support reply and sends it if approved.", human_input=True
)
async def support(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()  # pause point for background tasks
    ctx.begin_step()  # counts against max_steps
    request = LLMRequest(messages=[*ctx.history, ChatMessage(role="user", content=input)])
    draft = await ctx.llm.complete(request)  # cached, metered, cancellable
    if await ctx.ask(f"Send this reply? {draft.content}", kind="confirm"):
        yield MessageEvent(content=draft.content)
    else:
        yield MessageEvent(content="Not sent.")


# --- other agents the tests serve ---------------------------------------------------------
from app.sdk import TokenEvent  # noqa: E402 - kept below so the README part above stays whole


@agent(name="shouter", description="Repeats the input in capitals, word by word.")
async def shouter(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    ctx.begin_step()
    for word in input.upper().split():
        yield TokenEvent(text=word + " ")
    yield MessageEvent(content=input.upper())


not_an_agent = object()

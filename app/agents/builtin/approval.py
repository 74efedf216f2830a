"""approval: proposes an action, asks the human to confirm (and to choose how), then acts.

Shows human-in-the-loop end to end: ``input_required`` with kind ``choice`` then ``confirm``,
answered over WebSocket, POST /v1/runs/{id}/input, or a task's input route.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent
from app.agents.registry import agent
from app.agents.streaming import StreamedCall
from app.llm.types import ChatMessage, LLMRequest

PRIORITIES = ["low", "normal", "high"]


@agent(
    name="approval",
    description="Drafts an action for the request and performs it only after a human confirms.",
    human_input=True,
)
async def approval(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    step = ctx.begin_step()
    started = time.monotonic()
    await ctx.plan(["Draft the action", "Ask for priority and approval", "Act or stand down"])
    draft = StreamedCall(
        ctx,
        LLMRequest(
            messages=[
                ChatMessage(role="system", content="Draft, in one sentence, the action to take."),
                ChatMessage(role="user", content=input),
            ]
        ),
    )
    async for event in draft:
        yield event
    await ctx.step_done(step, started)

    await ctx.checkpoint()
    step = ctx.begin_step()
    started = time.monotonic()
    priority = await ctx.ask(
        "Which priority should this action have?", kind="choice", choices=PRIORITIES
    )
    approved = await ctx.ask(
        f"Approve this action at {priority} priority? {draft.response.content}", kind="confirm"
    )
    await ctx.step_done(step, started)
    if approved:
        outcome = f"Approved at {priority} priority. Action taken: {draft.response.content}"
    else:
        outcome = "Not approved. No action was taken."
    yield MessageEvent(role="assistant", content=outcome)

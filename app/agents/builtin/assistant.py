"""assistant: a tool-calling loop over the tool registry, up to max_steps.

Each step asks the model; tool calls are executed and their results fed back; the loop ends
when the model answers in text. Emits plan, step, tool_call and tool_result events, and a
log event after each round of tool calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent
from app.agents.registry import agent
from app.agents.streaming import StreamedCall
from app.llm.types import ChatMessage, LLMRequest

SYSTEM_PROMPT = (
    "You are an assistant that uses tools when they help. Call a tool when a question needs "
    "arithmetic or the current time; otherwise answer directly."
)


@agent(
    name="assistant",
    description="Answers using tools (calculator, current_time) in a loop of steps.",
    tools=True,
)
async def assistant(input: str, ctx: RunContext) -> AsyncIterator[Event]:
    tool_names = [tool.name for tool in ctx.tools.all()]
    await ctx.plan(
        ["Understand the request", f"Use tools if needed ({', '.join(tool_names)})", "Answer"],
        reflection=f"Budget: {ctx.max_steps} steps.",
    )
    messages = [
        ChatMessage(role="system", content=SYSTEM_PROMPT),
        *ctx.history,
        ChatMessage(role="user", content=input),
    ]
    while True:
        await ctx.checkpoint()
        step = ctx.begin_step()
        started = time.monotonic()
        call = StreamedCall(ctx, LLMRequest(messages=messages, tools=ctx.tools.specs()))
        async for event in call:
            yield event
        response = call.response
        if not response.tool_calls:
            yield MessageEvent(role="assistant", content=response.content)
            await ctx.step_done(step, started)
            return
        messages.append(
            ChatMessage(
                role="assistant", content=response.content or None, tool_calls=response.tool_calls
            )
        )
        success = True
        for tool_call in response.tool_calls:
            outcome = await ctx.call_tool(tool_call.id, tool_call.name, tool_call.arguments)
            success = success and outcome.success
            # A failure goes back to the model too, marked as one (it sees no success flag):
            # it can fix its arguments, try another tool, or answer anyway.
            content = outcome.output if outcome.success else f"error: {outcome.output}"
            messages.append(
                ChatMessage(
                    role="tool",
                    content=content,
                    tool_call_id=tool_call.id,
                    name=tool_call.name,
                )
            )
        # For whoever watches the run: the model is asked again with these results.
        await ctx.log(
            "Tool results go back to the model",
            level="info" if success else "warning",
            step=step,
            tools=len(response.tool_calls),
            all_succeeded=success,
        )
        await ctx.step_done(step, started, success=success)

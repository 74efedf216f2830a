"""Deferred tool calls answered by a human, while the run waits on the server.

A tool with ``requires_approval=True`` (or one raising ``ApprovalRequired``) asks a yes/no
question (``input_required`` of kind ``confirm``); a tool deferred to the outside
(``CallDeferred``, an external tool) asks for its result as text. The answers go back to the
framework as DeferredToolResults through its own HandleDeferredToolCalls capability, so the
same run goes on: approved calls run, denied ones are reported to the model.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolCallPart
from pydantic_ai import RunContext as ToolRunContext
from pydantic_ai.capabilities import HandleDeferredToolCalls

from app.agents.context import RunContext


def human_answers(ctx: RunContext) -> HandleDeferredToolCalls[Any]:
    """The capability that answers a run's deferred calls through ``ctx.ask``."""

    async def answer(_: ToolRunContext[Any], requests: DeferredToolRequests) -> DeferredToolResults:
        results = DeferredToolResults()
        for call in requests.approvals:
            allowed = await ctx.ask(f"Allow {_describe(call)}?", kind="confirm")
            results.approvals[call.tool_call_id] = bool(allowed)
        for call in requests.calls:
            prompt = f"Give the result of {_describe(call)}."
            results.calls[call.tool_call_id] = await ctx.ask(prompt, kind="text")
        return results

    return HandleDeferredToolCalls(handler=answer)


def _describe(call: ToolCallPart) -> str:
    arguments = json.dumps(call.args_as_dict(), ensure_ascii=False, default=str)
    return f"{call.tool_name} {arguments}"

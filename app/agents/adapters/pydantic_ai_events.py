"""What a Pydantic AI run shows, in our terms: its stream events, usage and output.

Text deltas become ``token`` events; function tool calls and their results become
``tool_call`` / ``tool_result`` (output tools are the final answer, not tools the user sees).
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic_ai import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.usage import RunUsage

from app.agents.context import RunContext
from app.agents.events import TokenEvent, ToolCallEvent, ToolResultEvent
from app.llm.types import Usage

Translated = TokenEvent | ToolCallEvent | ToolResultEvent


def translate(event: object) -> Translated | None:
    """Our event for one of the run's stream events; None for what we do not show (thinking,
    tool-call argument deltas before the call runs, final-result markers)."""
    if isinstance(event, PartDeltaEvent):  # the most frequent, first
        delta = event.delta
        if isinstance(delta, TextPartDelta) and delta.content_delta:
            return TokenEvent(text=delta.content_delta)
    elif isinstance(event, PartStartEvent):
        part = event.part
        if isinstance(part, TextPart) and part.content:
            return TokenEvent(text=part.content)
    elif isinstance(event, FunctionToolCallEvent):
        call = event.part
        return ToolCallEvent(
            id=call.tool_call_id, name=call.tool_name, arguments=call.args_as_dict()
        )
    elif isinstance(event, FunctionToolResultEvent):
        result = event.part
        return ToolResultEvent(
            id=result.tool_call_id,
            output=result.model_response_str(),
            success=result.outcome == "success",
        )
    return None


def output_text(output: Any) -> str:
    """The run's output as the text our run completes with (structured output as JSON)."""
    if isinstance(output, str):
        return output
    return pydantic_core.to_json(output).decode()


class UsageMeter:
    """Counts the tokens the framework's own model reported into the run's usage as they
    accrue (a run cut short still counts what it spent), through ``ctx.add_usage``."""

    def __init__(self, ctx: RunContext, *, enabled: bool = True) -> None:
        self._ctx = ctx
        self._enabled = enabled  # off when the model is ctx.llm, which counts for itself
        self._input = 0
        self._output = 0

    def update(self, usage: RunUsage) -> None:
        prompt = usage.input_tokens - self._input
        completion = usage.output_tokens - self._output
        if not self._enabled or (prompt == 0 and completion == 0):
            return
        self._input, self._output = usage.input_tokens, usage.output_tokens
        self._ctx.add_usage(
            Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
            )
        )

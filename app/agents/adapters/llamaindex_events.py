"""A LlamaIndex workflow's streamed events as ours, one run at a time.

An event carrying a text ``delta`` (an agent's ``AgentStream``, or a user's own event with a
``delta`` field) is a token; an agent workflow's ``ToolCall`` / ``ToolCallResult`` are
tool_call / tool_result; any other event is a step. An ``AgentOutput`` (one model answer)
also carries the usage its model reported, counted through ``ctx.add_usage``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from pydantic import BaseModel
from workflows.events import Event as WorkflowEvent
from workflows.events import StopEvent

from app.agents.context import RunContext
from app.agents.events import Event, StepEvent, TokenEvent, ToolCallEvent, ToolResultEvent
from app.llm.types import Usage

# Looked up, not imported: llama-index-core costs a second to import, and a plain workflow
# never needs it (an event of these types means the module is already loaded).
AGENT_EVENTS = "llama_index.core.agent.workflow.workflow_events"
_PROMPT_KEYS = ("prompt_tokens", "input_tokens", "prompt_token_count")
_COMPLETION_KEYS = ("completion_tokens", "output_tokens", "candidates_token_count")


def agent_events() -> Any:
    """The agent workflows' event module, or None while nothing has imported it."""
    return sys.modules.get(AGENT_EVENTS)


class EventTranslator:
    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._steps = 0
        self._since = time.monotonic()
        self._announced: set[str] = set()

    def translate(self, event: WorkflowEvent) -> list[Event]:
        delta = getattr(event, "delta", None)
        if isinstance(delta, str):
            # Empty deltas are the chunks of a tool call (AgentStream): nothing to show.
            return [TokenEvent(text=delta)] if delta else []
        agent = agent_events()
        if agent is not None:
            if isinstance(event, agent.ToolCall):
                # A tool that waits for a human is replayed once answered: announce it once.
                if event.tool_id in self._announced:
                    return []
                self._announced.add(event.tool_id)
                arguments = dict(event.tool_kwargs)
                return [ToolCallEvent(id=event.tool_id, name=event.tool_name, arguments=arguments)]
            if isinstance(event, agent.ToolCallResult):
                output = event.tool_output
                return [
                    ToolResultEvent(
                        id=event.tool_id, output=str(output.content), success=not output.is_error
                    )
                ]
            if isinstance(event, agent.AgentOutput):
                usage = usage_of(event.raw)
                if usage is not None:
                    self._ctx.add_usage(usage)
        return [self._step()]

    def _step(self) -> StepEvent:
        self._steps += 1
        now = time.monotonic()
        duration, self._since = round(now - self._since, 4), now
        # Counted for the run's record, not against max_steps: the workflow's own limits
        # (its timeout, an agent's max_iterations) bound it.
        self._ctx.steps_taken = self._steps
        return StepEvent(number=self._steps, duration_s=duration)


def usage_of(raw: Any) -> Usage | None:
    """Token counts from a model's raw answer, read as llama-index's own TokenCountingHandler
    reads them (``usage`` or ``usage_metadata``, OpenAI, Anthropic or Gemini key names)."""
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        return None
    found = raw.get("usage") or raw.get("usage_metadata")
    if isinstance(found, BaseModel):
        found = found.model_dump()
    if not isinstance(found, dict):
        return None
    prompt = next((found[k] for k in _PROMPT_KEYS if isinstance(found.get(k), int)), 0)
    completion = next((found[k] for k in _COMPLETION_KEYS if isinstance(found.get(k), int)), 0)
    if not prompt and not completion:
        return None
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def result_text(result: Any) -> str | None:
    """The run's output from what the workflow returned; None leaves it to the tokens."""
    if result is None or isinstance(result, str):
        return result
    if isinstance(result, StopEvent):  # a custom stop event: its result, else its fields
        inner = result.result
        return result_text(inner) if inner is not None else result.model_dump_json()
    if isinstance(result, dict | list | tuple):
        return json.dumps(result, default=str)
    if isinstance(result, BaseModel) and type(result).__str__ is BaseModel.__str__:
        return result.model_dump_json()
    return str(result)  # e.g. an agent's AgentOutput: the text of its answer

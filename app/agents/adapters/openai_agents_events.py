"""The OpenAI Agents SDK's stream events as ours, and the run hooks the adapter installs.

- a raw ``response.output_text.delta`` -> ``token``
- ``tool_called`` / ``tool_output`` run items -> ``tool_call`` / ``tool_result`` (same id)
- the running agent -> a ``step`` (one per agent: a handoff ends one step and starts the
  next, with a ``log`` naming both agents)
- the tokens an Agent's own SDK Model spent -> ``ctx.add_usage`` (a name-resolved model's
  calls went through ``ctx.llm``, which counted them already)
"""

from __future__ import annotations

import json
import time
from typing import Any

from agents import Agent, ModelResponse, RunContextWrapper, RunHooks, TResponseInputItem
from agents.items import ToolCallItem, ToolCallOutputItem
from agents.stream_events import StreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from app.agents.adapters.openai_agents_model import is_routed
from app.agents.context import RunContext
from app.agents.events import Event, TokenEvent, ToolCallEvent, ToolResultEvent
from app.llm.types import Usage


class EventMapper:
    """Translates one run's SDK events; ``rejected`` holds the tool calls a human refused."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.rejected: set[str] = set()
        self._agent: Agent[Any] | None = None
        self._step: tuple[int, float] | None = None  # (number, started)

    async def translate(self, event: StreamEvent) -> Event | None:
        if event.type == "raw_response_event":
            data = event.data
            if isinstance(data, ResponseTextDeltaEvent) and data.delta:
                return TokenEvent(text=data.delta)
            return None
        if event.type == "agent_updated_stream_event":
            await self._agent_running(event.new_agent)
            return None
        if event.name == "tool_called" and isinstance(event.item, ToolCallItem):
            raw = event.item.raw_item
            return ToolCallEvent(
                id=_call_id(raw),
                name=str(_field(raw, "name") or _field(raw, "type") or "tool"),
                arguments=_arguments(_field(raw, "arguments")),
            )
        if event.name == "tool_output" and isinstance(event.item, ToolCallOutputItem):
            call_id = _call_id(event.item.raw_item)
            output = _field(event.item.raw_item, "output")
            return ToolResultEvent(
                id=call_id,
                output=output if isinstance(output, str) else str(event.item.output),
                success=call_id not in self.rejected,
            )
        return None

    async def _agent_running(self, agent: Agent[Any]) -> None:
        # Resuming after a tool approval announces the same agent again: not a new step.
        if agent is self._agent:
            return
        previous, self._agent = self._agent, agent
        await self.finish()
        self._step = (self._ctx.begin_step(), time.monotonic())
        if previous is not None:
            await self._ctx.log(
                f"handoff from {previous.name} to {agent.name}",
                agent=agent.name,
                previous=previous.name,
            )

    async def finish(self) -> None:
        """End the current agent's step."""
        if self._step is not None:
            number, started = self._step
            self._step = None
            await self._ctx.step_done(number, started)


class AdapterHooks(RunHooks[Any]):
    """Pause at each model call (``ctx.checkpoint``) and count the tokens of calls that did
    not go through ``ctx.llm``."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        await self._ctx.checkpoint()

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        if is_routed(agent.model):
            return
        usage = response.usage
        self._ctx.add_usage(
            Usage(
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
            )
        )


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _call_id(raw: Any) -> str:
    return str(_field(raw, "call_id") or _field(raw, "id") or "")


def _arguments(raw: Any) -> dict[str, Any]:
    """A function call's JSON arguments as an object (anything else kept under ``input``)."""
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"input": raw}
    return value if isinstance(value, dict) else {"input": value}

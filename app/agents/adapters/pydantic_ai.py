"""Serve a Pydantic AI ``Agent`` behind the Agent contract.

``AGENTS=support=myapp.agents:agent`` serves it as ``support``; without ``name=`` the agent's
own ``name`` (``Agent(..., name="Support Bot")`` -> ``support-bot``) or, when it has none,
``pydantic-ai``. Each run drives ``agent.iter()`` node by node, streaming every model request
and tool-call node (``node.stream``), in the run's own task, so cancelling the run cancels
the model request and closes its stream. What the run shows:

- text deltas as ``token`` events, function tool calls and results as ``tool_call`` /
  ``tool_result``, each model request with the tool calls it made as one ``step`` (counted
  against max_steps, a pause point for tasks), the output (JSON for structured output) as
  the final ``message``;
- deferred tool calls (``requires_approval=True``, ``CallDeferred``) as ``input_required``,
  answered while the run waits (pydantic_ai_approvals.py);
- the session's conversation as the agent's own message list (pydantic_ai_history.py);
- the tokens its model reported, in the run's usage (``ctx.add_usage``), and a failure of its
  model client as our ``llm_*`` errors (pydantic_ai_errors.py);
- an agent built without a model runs on the service's LLM (pydantic_ai_llm.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.toolsets import ApprovalRequiredToolset, ExternalToolset, FunctionToolset
from pydantic_ai.toolsets.abstract import AbstractToolset

from app.agents.adapters import agent_name_from
from app.agents.adapters.pydantic_ai_approvals import human_answers
from app.agents.adapters.pydantic_ai_errors import model_failure
from app.agents.adapters.pydantic_ai_events import UsageMeter, output_text, translate
from app.agents.adapters.pydantic_ai_history import load_history, save_history
from app.agents.adapters.pydantic_ai_llm import service_model
from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent, ToolResultEvent
from app.agents.protocol import DEFAULT_INPUT_SCHEMA, AgentCapabilities

FALLBACK_NAME = "pydantic-ai"


def accepts(obj: Any) -> bool:
    return isinstance(obj, AbstractAgent)


def build(obj: AbstractAgent[Any, Any], *, name: str | None) -> PydanticAIAgent:
    return PydanticAIAgent(obj, name=name or agent_name_from(obj.name, fallback=FALLBACK_NAME))


class PydanticAIAgent:
    def __init__(self, agent: AbstractAgent[Any, Any], *, name: str) -> None:
        self.agent = agent
        self.name = name
        self.description = agent.description or f"Pydantic AI agent {agent.name or name}"
        self.input_schema = DEFAULT_INPUT_SCHEMA
        self.capabilities = _capabilities(agent)

    async def run(self, input: Any, ctx: RunContext) -> AsyncIterator[Event]:
        output = await self._drive(str(input), ctx)
        yield MessageEvent(role="assistant", content=output)

    async def _drive(self, prompt: str, ctx: RunContext) -> str:
        try:
            return await self._iterate(prompt, ctx)
        except ModelAPIError as exc:  # the agent's own model client failed: an llm_* error
            raise model_failure(exc) from exc

    async def _iterate(self, prompt: str, ctx: RunContext) -> str:
        """Run the agent, publishing its events as they happen; the output text.

        Events go out with ``ctx.emit`` from inside the framework's contexts instead of being
        yielded: a generator left suspended at a yield inside ``agent.iter()`` would be closed
        later, from another task, keeping the model's stream open until then.
        """
        own_llm = self.agent.model is None
        meter = UsageMeter(ctx, enabled=not own_llm)  # ctx.llm counts its own calls
        steps = _Steps(ctx)
        async with self.agent.iter(
            prompt,
            message_history=await load_history(ctx),
            model=service_model(ctx) if own_llm else None,
            capabilities=[human_answers(ctx)],
            infer_name=False,  # the name is ours to give, not taken from our frame
        ) as agent_run:
            async for node in agent_run:
                meter.update(agent_run.usage)
                if PydanticAgent.is_model_request_node(node):
                    await steps.begin()
                if PydanticAgent.is_model_request_node(node) or PydanticAgent.is_call_tools_node(
                    node
                ):
                    async with node.stream(agent_run.ctx) as stream:
                        async for item in stream:
                            event = translate(item)
                            if event is not None:
                                steps.saw(event)
                                await ctx.emit(event)
            await steps.end()
            meter.update(agent_run.usage)
            result = agent_run.result
        if result is None:  # the graph ended without a result: the framework's own failure
            raise RuntimeError("the Pydantic AI run ended without a result")
        await save_history(ctx, result.all_messages())
        return output_text(result.output)


class _Steps:
    """A step is one model request and the tool calls it made, as in our own agents."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._number: int | None = None
        self._started = 0.0
        self._success = True

    async def begin(self) -> None:
        await self.end()
        await self._ctx.checkpoint()
        self._number = self._ctx.begin_step()  # MaxStepsExceeded ends the run
        self._started = time.monotonic()
        self._success = True

    def saw(self, event: Event) -> None:
        if isinstance(event, ToolResultEvent) and not event.success:
            self._success = False

    async def end(self) -> None:
        if self._number is not None:
            await self._ctx.step_done(self._number, self._started, success=self._success)
            self._number = None


def _capabilities(agent: AbstractAgent[Any, Any]) -> AgentCapabilities:
    """Tools and human input, as far as the agent's toolsets tell before a run (a tool may
    still raise ApprovalRequired on its own)."""
    tools = human = False

    def visit(toolset: AbstractToolset[Any]) -> None:
        nonlocal tools, human
        if isinstance(toolset, FunctionToolset):
            tools = tools or bool(toolset.tools)
            human = human or any(tool.requires_approval for tool in toolset.tools.values())
        else:  # MCP servers and other toolsets list their tools at run time
            tools = True
            human = human or isinstance(toolset, ExternalToolset)

    for toolset in getattr(agent, "toolsets", ()):
        human = human or isinstance(toolset, ApprovalRequiredToolset)
        toolset.apply(visit)
    return AgentCapabilities(streaming=True, tools=tools, human_input=human)

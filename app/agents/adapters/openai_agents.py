"""Serve an OpenAI Agents SDK ``Agent``: ``AGENTS=support=myapp.agents:triage``.

Each run is ``Runner.run_streamed`` on the Agent, with:

- models: an Agent whose model is a name (or none) calls the service's LLM through
  ``ctx.llm`` (app/agents/adapters/openai_agents_model.py: our cache, metrics and usage); an
  Agent given an SDK ``Model`` object calls it as configured, and the tokens it reports are
  added to the run's usage. The SDK's tracing is off for these runs (nothing is exported).
- events: text deltas, tool calls and results, one step per agent (handoffs), see
  app/agents/adapters/openai_agents_events.py; the output is the run's final output.
- human input: a tool with ``needs_approval`` stops the SDK run with an interruption; each
  becomes a ``confirm`` question (``ctx.ask``), the answer approves or rejects the call on
  the run's state, and the run resumes from it.
- sessions: the conversation items live in the session's framework state (the SDK's Session
  protocol over ``ctx.state``), saved when a run completes.
- limits: ``max_steps`` is the SDK's ``max_turns`` (a model call is a turn).
- cancel: cancelling the run cancels the SDK's run task and waits (briefly) for it to end,
  so its model stream is closed before the run reports its end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent as SdkAgent
from agents import FunctionTool, Handoff, MaxTurnsExceeded, RunConfig, Runner, RunState
from agents.items import TResponseInputItem
from agents.result import RunResultStreaming
from pydantic import BaseModel

from app.agents.adapters import agent_name_from
from app.agents.adapters.openai_agents_events import AdapterHooks, EventMapper
from app.agents.adapters.openai_agents_model import RoutedModelProvider
from app.agents.adapters.openai_agents_session import StateSession, history_items
from app.agents.context import RunContext
from app.agents.errors import MaxStepsExceeded
from app.agents.events import Event, MessageEvent
from app.agents.protocol import DEFAULT_INPUT_SCHEMA, AgentCapabilities

# How long a cancelled run waits for the SDK's task to finish closing its model stream.
STOP_TIMEOUT_SECONDS = 2.0


def accepts(obj: Any) -> bool:
    return isinstance(obj, SdkAgent)


def build(obj: Any, *, name: str | None) -> OpenAIAgentsAgent:
    return OpenAIAgentsAgent(obj, name=name or agent_name_from(obj.name, fallback="openai-agent"))


class OpenAIAgentsAgent:
    def __init__(self, agent: SdkAgent[Any], *, name: str) -> None:
        self.agent = agent
        self.name = name
        self.description = _description(agent)
        self.input_schema = DEFAULT_INPUT_SCHEMA
        agents = _reachable(agent)
        tools = [tool for each in agents for tool in each.tools]
        self.capabilities = AgentCapabilities(
            streaming=True,
            tools=bool(tools),
            human_input=any(
                isinstance(tool, FunctionTool) and tool.needs_approval is not False
                for tool in tools
            ),
        )

    async def run(self, input: Any, ctx: RunContext) -> AsyncIterator[Event]:
        text = input.model_dump_json() if isinstance(input, BaseModel) else str(input)
        session = None
        start: str | list[TResponseInputItem] | RunState[Any] = text
        if ctx.state is not None:
            session = await StateSession.open(ctx.state, ctx.history)
        elif ctx.history:
            start = [*history_items(ctx.history), {"role": "user", "content": text}]
        config = RunConfig(model_provider=RoutedModelProvider(ctx.llm), tracing_disabled=True)
        hooks = AdapterHooks(ctx)
        mapper = EventMapper(ctx)
        result: RunResultStreaming | None = None
        output: Any = None
        try:
            while True:
                result = Runner.run_streamed(
                    self.agent,
                    start,
                    max_turns=ctx.max_steps,
                    hooks=hooks,
                    run_config=config,
                    session=session,
                )
                async for sdk_event in result.stream_events():
                    event = await mapper.translate(sdk_event)
                    if event is not None:
                        yield event
                if not result.interruptions:
                    output = result.final_output
                    break
                start = await _decide(result, ctx, mapper)
        except MaxTurnsExceeded:
            raise MaxStepsExceeded(f"the run used its {ctx.max_steps} model turns") from None
        finally:
            if result is not None:
                await _stop(result)
        await mapper.finish()
        if session is not None:
            await session.commit()
        yield MessageEvent(role="assistant", content=_output_text(output))


async def _decide(
    result: RunResultStreaming, ctx: RunContext, mapper: EventMapper
) -> RunState[Any]:
    """Ask the human about each tool call waiting for approval; the state to resume from."""
    state = result.to_state()
    for item in result.interruptions:
        approved = await ctx.ask(
            f"{item.agent.name} wants to call {item.name}({item.arguments or ''}). Allow it?",
            kind="confirm",
        )
        if approved:
            state.approve(item)
        else:
            state.reject(item)
            mapper.rejected.add(str(item.call_id))
    return state


async def _stop(result: RunResultStreaming) -> None:
    """Cancel the SDK's run task if it still runs, and let it close its model stream."""
    task = result.run_loop_task
    if task is None or task.done():
        return
    # Already cancelled (the SDK's stream_events does it when our task is cancelled): a
    # second cancel would land in the HTTP client's cleanup and leave the socket open.
    if not task.cancelling():
        result.cancel()
    await asyncio.wait({task}, timeout=STOP_TIMEOUT_SECONDS)


def _output_text(output: Any) -> str:
    if output is None or isinstance(output, str):
        return output or ""
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    try:
        return json.dumps(output)
    except (TypeError, ValueError):
        return str(output)


def _reachable(agent: SdkAgent[Any]) -> list[SdkAgent[Any]]:
    """The agent and every agent its handoffs lead to."""
    found: list[SdkAgent[Any]] = []
    pending: list[Any] = [agent]
    while pending:
        item = pending.pop()
        if isinstance(item, Handoff):
            item = item._agent_ref() if item._agent_ref is not None else None
        if isinstance(item, SdkAgent) and all(item is not seen for seen in found):
            found.append(item)
            pending.extend(item.handoffs)
    return found


def _description(agent: SdkAgent[Any]) -> str:
    if agent.handoff_description:
        return agent.handoff_description
    if isinstance(agent.instructions, str) and agent.instructions.strip():
        first = agent.instructions.strip().splitlines()[0]
        return first if len(first) <= 200 else f"{first[:197]}..."
    return f"OpenAI Agents SDK agent {agent.name!r}."

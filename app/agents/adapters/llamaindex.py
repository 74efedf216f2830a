"""Serve a LlamaIndex ``Workflow`` instance (a user's subclass, or an agent workflow such as
``FunctionAgent`` / ``AgentWorkflow``) as an Agent.

- Input: the start event gets it as ``input``; an agent workflow also as ``user_msg``.
- ``handler.stream_events()``: an event with a text ``delta`` is a token; ToolCall /
  ToolCallResult are tool_call / tool_result; any other event is a step
  (app/agents/adapters/llamaindex_events.py). The run's output is the workflow's result.
- Human input: an ``InputRequiredEvent`` (its ``prefix`` is the question) goes through
  ``ctx.ask``; the answer comes back as ``HumanResponseEvent(response=answer)``, carrying the
  request's other fields so ``wait_for_event(requirements=...)`` matches it.
- Sessions: the Context is saved to ``ctx.state`` after a run and restored for the next
  (app/agents/adapters/llamaindex_session.py).
- Cancel: a cancelled run cancels the workflow (``handler.cancel_run()``), whose control
  loop cancels the running steps and, with them, their upstream model streams.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from workflows import Workflow
from workflows.errors import WorkflowValidationError
from workflows.events import HumanResponseEvent, InputRequiredEvent, StopEvent
from workflows.handler import WorkflowHandler

from app.agents.adapters import agent_name_from
from app.agents.adapters.llamaindex_events import EventTranslator, agent_events, result_text
from app.agents.adapters.llamaindex_session import SavedSession, load_session, save_session
from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent, StepEvent
from app.agents.protocol import DEFAULT_INPUT_SCHEMA, AgentCapabilities

CANCEL_GRACE_SECONDS = 2.0  # how long a cancelled workflow may take to stop its steps


def accepts(obj: Any) -> bool:
    return isinstance(obj, Workflow)


def build(obj: Any, *, name: str | None) -> WorkflowAgent:
    return WorkflowAgent(obj, name=name or default_name(obj))


def default_name(workflow: Workflow) -> str:
    """An agent workflow's own ``name`` (``FunctionAgent(name="calculator")``), else the class
    name in kebab case (``SupportFlow`` -> ``support-flow``)."""
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", type(workflow).__name__)
    own = getattr(workflow, "name", None)
    return agent_name_from(own if isinstance(own, str) else kebab, fallback=kebab)


class WorkflowAgent:
    def __init__(self, workflow: Workflow, *, name: str) -> None:
        self._workflow = workflow
        self.name = name
        self.description = _description(workflow)
        self.input_schema = DEFAULT_INPUT_SCHEMA
        events = agent_events()
        self._agent = events is not None and issubclass(
            workflow.start_event_class, events.AgentWorkflowStartEvent
        )
        try:
            uses_hitl = workflow.validate()  # True when a step takes HumanResponseEvent
        except WorkflowValidationError as exc:  # start-up fails with the framework's reason
            raise ValueError(f"the workflow is not valid: {exc}") from None
        self.capabilities = AgentCapabilities(human_input=uses_hitl, tools=self._agent)

    async def run(self, input: str, ctx: RunContext) -> AsyncIterator[Event]:
        await ctx.checkpoint()
        saved = await load_session(self._workflow, ctx, agent=self._agent)
        handler = await self._start(input, saved, ctx)
        translator = EventTranslator(ctx)
        try:
            async with aclosing(handler.stream_events()) as stream:
                async for event in stream:
                    if isinstance(event, StopEvent):
                        break
                    if isinstance(event, InputRequiredEvent):
                        answer = await ctx.ask(_question(event))
                        handler.ctx.send_event(_answer(event, answer))
                        continue
                    for ours in translator.translate(event):
                        if isinstance(ours, StepEvent):
                            await ctx.checkpoint()
                        yield ours
            result = await handler  # raises what failed the workflow
        finally:
            if not handler.is_done():  # cancelled, timed out, or the reader left
                await handler.cancel_run(timeout=CANCEL_GRACE_SECONDS)
        await save_session(handler, ctx, agent=self._agent)
        text = result_text(result)
        if text is not None:
            yield MessageEvent(content=text)

    async def _start(self, input: str, saved: SavedSession, ctx: RunContext) -> WorkflowHandler:
        arguments: dict[str, Any] = {"input": input}
        if self._agent:
            arguments["user_msg"] = input
            if saved.chat_history:
                arguments["chat_history"] = saved.chat_history
        if saved.context is None:
            return self._workflow.run(**arguments)
        try:
            return self._workflow.run(ctx=saved.context, **arguments)
        except Exception as exc:  # the saved context no longer fits this workflow
            await ctx.log(
                "The session's saved workflow context does not fit the workflow; starting afresh.",
                level="warning",
                error=type(exc).__name__,
            )
            return self._workflow.run(**arguments)


def _question(event: InputRequiredEvent) -> str:
    prefix = getattr(event, "prefix", None)
    return prefix if isinstance(prefix, str) and prefix.strip() else "The workflow needs input."


def _answer(event: InputRequiredEvent, answer: Any) -> HumanResponseEvent:
    """The answer, with the request's fields (declared, or extra as in ``user="x"``)."""
    echoed = {field: getattr(event, field) for field in type(event).model_fields}
    echoed.update(event.items())
    for own in ("prefix", "response"):
        echoed.pop(own, None)
    return HumanResponseEvent(response=answer, **echoed)


def _description(workflow: Workflow) -> str:
    own = getattr(workflow, "description", None)
    if isinstance(own, str) and own.strip():
        return own.strip()
    doc = (type(workflow).__doc__ or "").strip()  # the class's own docstring, not a base's
    if doc:
        return " ".join(doc.split("\n\n")[0].split())  # its first paragraph, on one line
    return f"LlamaIndex workflow {type(workflow).__name__}."

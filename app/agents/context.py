"""RunContext: everything an agent may use during one run, and nothing about HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from app.agents.control import RunControl
from app.agents.errors import InputTimeout, MaxStepsExceeded
from app.agents.events import (
    Event,
    InputKind,
    InputRequired,
    LogEvent,
    LogLevel,
    LogValue,
    MemorySummaryEvent,
    PlanEvent,
    StepEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.run_llm import RunLLM
from app.agents.tools.registry import ToolOutcome, ToolRegistry
from app.llm.types import ChatMessage, Usage
from app.observability import tracing
from app.store.agent_state import SessionState

if TYPE_CHECKING:
    from app.observability.tracing_runs import RunTrace

Publish = Callable[[Event], Awaitable[None]]


class RunContext:
    def __init__(
        self,
        *,
        run_id: str,
        agent: str,
        principal_id: str,
        session_id: str | None,
        history: list[ChatMessage],
        llm: RunLLM,
        tools: ToolRegistry,
        max_steps: int,
        deadline: float,
        input_timeout: float,
        params: dict[str, Any],
        control: RunControl,
        publish: Publish,
        answered: Callable[[], Awaitable[None]] | None = None,
        state: SessionState | None = None,
    ) -> None:
        self.run_id = run_id
        self.agent = agent
        self.principal_id = principal_id
        self.session_id = session_id
        self.history = history
        self.llm = llm
        self.tools = tools
        self.max_steps = max_steps
        self.deadline = deadline  # time.monotonic() value
        self.params = params
        self.control = control
        self.steps_taken = 0
        self._input_timeout = input_timeout
        self._publish = publish
        self._answered = answered  # the run's record leaves input_required
        # Framework state kept with the session (None for a stateless run): adapters keep
        # a LangGraph thread's checkpoints or a workflow's context here between runs.
        self.state = state
        self.trace: RunTrace | None = None  # the run's spans, when tracing is on (run.py)

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def emit(self, event: Event) -> None:
        """Publish an event now (for agents that do not yield, or from a helper)."""
        await self._publish(event)

    def add_usage(self, usage: Usage, *, cached: bool = False) -> None:
        """Count tokens spent by a model call that did not go through ``ctx.llm`` (a
        framework's own model client), so the run's usage and metrics include them."""
        self.llm.add_external(usage, cached=cached)

    async def checkpoint(self) -> None:
        """A step boundary: waits here while the run is paused."""
        await self.control.wait_while_paused()

    def begin_step(self) -> int:
        """Count a step; MaxStepsExceeded once the budget is spent."""
        if self.steps_taken >= self.max_steps:
            raise MaxStepsExceeded(f"the run used its {self.max_steps} steps")
        self.steps_taken += 1
        if self.trace is not None:
            self.trace.step_started(self.steps_taken)
        return self.steps_taken

    async def step_done(self, number: int, started: float, *, success: bool = True) -> None:
        duration = round(time.monotonic() - started, 4)
        if self.trace is not None:
            self.trace.step_ended(number, success=success)
        await self._publish(StepEvent(number=number, duration_s=duration, success=success))

    async def plan(self, items: list[str], reflection: str | None = None) -> None:
        await self._publish(PlanEvent(items=items, reflection=reflection))

    async def log(self, message: str, *, level: LogLevel = "info", **data: LogValue) -> None:
        """A progress note for the humans following the run (a ``log`` event); keyword
        arguments become its ``data``."""
        await self._publish(LogEvent(level=level, message=message, data=data))

    async def summarize_memory(self, summary: str, *, messages_summarized: int = 0) -> None:
        """Tell what the agent kept after compacting its working memory (a
        ``memory_summary`` event; GET /v1/tasks/{id}/memory shows the last one)."""
        await self._publish(
            MemorySummaryEvent(summary=summary, messages_summarized=messages_summarized)
        )

    async def call_tool(self, call_id: str, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Run a registered tool, publishing tool_call and tool_result events.

        Never raises for the tool's sake: an unknown tool, bad arguments, an exception or a
        timeout is ``ToolOutcome(success=False)`` whose output says why (feed it back to the
        model). Cancellation of the run still propagates.
        """
        await self._publish(ToolCallEvent(id=call_id, name=name, arguments=arguments))
        with tracing.tool_span(self.trace, name=name, call_id=call_id, arguments=arguments) as span:
            outcome = await self.tools.call(name, arguments)
            if span is not None:
                span.done(outcome.output, success=outcome.success)
        await self._publish(
            ToolResultEvent(id=call_id, output=outcome.output, success=outcome.success)
        )
        return outcome

    async def ask(
        self, prompt: str, *, kind: InputKind = "text", choices: list[str] | None = None
    ) -> Any:
        """Ask the human; returns str (text, choice) or bool (confirm)."""
        if kind == "choice" and not choices:
            raise ValueError("a choice question needs choices")
        request_id = uuid.uuid4().hex
        pending = self.control.expect(request_id, kind, choices)
        await self._publish(
            InputRequired(request_id=request_id, kind=kind, prompt=prompt, choices=choices)
        )
        timeout = min(self._input_timeout, self.remaining_seconds)
        try:
            with anyio.fail_after(timeout):
                answer = await pending.future
        except TimeoutError:
            raise InputTimeout("no answer to the input request in time") from None
        finally:
            self.control.forget(request_id)
        if self._answered is not None:
            await self._answered()
        return answer

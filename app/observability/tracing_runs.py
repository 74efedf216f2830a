"""The spans of one run: ``invoke_agent {agent}``, a ``step`` per ctx.begin_step() ..
ctx.step_done(), and ``execute_tool {tool}`` per tool call. Imported only when tracing is on.

A run's spans are made current by setting the context in the run's own task (its agent
generator runs there), never by a matched attach/detach: a step opened in ``begin_step`` is
closed in ``step_done`` after any number of awaits and yields, steps of a framework may
overlap, and a failed step is never closed by the agent at all. So the run keeps its open
steps and, whenever one opens or closes, makes the newest open one (else the agent span)
the current span of its task: model calls, tool calls and log lines attach to it. The task
ends with the run, and its context with it; ``ended`` restores the parent for the run's
last bookkeeping (record, session) all the same.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from app.observability.fast_context import attach, current_context, with_span
from app.observability.tracing_genai import (
    AGENT_NAME,
    ERROR_TYPE,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    STEP_NUMBER,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_RESULT,
    TOOL_TYPE,
    GenAIConventions,
    UsageLike,
)


class ToolTrace:
    """What the caller tells the tool span about the outcome."""

    def __init__(self, span: Span, *, capture: bool) -> None:
        self._span = span
        self._capture = capture

    def done(self, output: Any, *, success: bool) -> None:
        if self._capture:
            text = output if isinstance(output, str) else json.dumps(output, default=str)
            self._span.set_attribute(TOOL_RESULT, text)
        if not success:  # the run goes on (the model sees the failure), the span says so
            self._span.set_attribute(ERROR_TYPE, "tool_error")
            self._span.set_status(StatusCode.ERROR, "tool_error")


class RunTrace:
    def __init__(
        self, tracer: Tracer, genai: GenAIConventions, *, attributes: Mapping[str, str]
    ) -> None:
        self._tracer = tracer
        self._genai = genai
        self._agent = attributes[AGENT_NAME]
        self._outer = current_context()
        self._span = tracer.start_span(
            f"invoke_agent {self._agent}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        self._context = with_span(self._span, self._outer)
        self._steps: dict[int, Span] = {}
        self._make_current(self._context)

    @staticmethod
    def _make_current(context: Context) -> None:
        # The token is dropped on purpose: see the module's docstring.
        attach(context)

    def step_started(self, number: int) -> None:
        previous = self._steps.pop(number, None)
        if previous is not None:  # the same number again: the agent restarted it
            previous.end()
        span = self._tracer.start_span(
            "step",
            context=self._context,
            kind=SpanKind.INTERNAL,
            attributes={STEP_NUMBER: number, AGENT_NAME: self._agent},
        )
        self._steps[number] = span
        self._make_current(with_span(span, self._context))

    def step_ended(self, number: int, *, success: bool) -> None:
        span = self._steps.pop(number, None)
        if span is None:
            return
        if not success:
            span.set_status(StatusCode.ERROR, "step_failed")
        span.end()
        newest = next(reversed(self._steps.values()), None)
        current = self._context if newest is None else with_span(newest, self._context)
        self._make_current(current)

    @contextlib.contextmanager
    def tool(self, *, name: str, call_id: str, arguments: Mapping[str, Any]) -> Iterator[ToolTrace]:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            TOOL_NAME: name,
            TOOL_CALL_ID: call_id,
            TOOL_TYPE: "function",
            **self._genai.tool_content(arguments),
        }
        with self._tracer.start_as_current_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield ToolTrace(span, capture=self._genai.capture_content)

    def ended(self, *, status: str, usage: UsageLike, error_code: str | None) -> None:
        """The run's end: open steps close, usage and status go on the agent span;
        ``error_code`` only for a run that failed (a cancelled one is no error)."""
        for span in self._steps.values():
            if error_code is not None:
                span.set_status(StatusCode.ERROR, error_code)
            span.end()
        self._steps.clear()
        span = self._span
        span.set_attribute(INPUT_TOKENS, usage.prompt_tokens)
        span.set_attribute(OUTPUT_TOKENS, usage.completion_tokens)
        span.set_attribute("agent_service.run.status", status)
        if error_code is not None:
            span.set_attribute(ERROR_TYPE, error_code)
            span.set_status(StatusCode.ERROR, error_code)
        span.end()
        self._make_current(self._outer)

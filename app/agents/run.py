"""One run: drives the agent in its own task and publishes its stamped events.

The agent runs in a task the Run owns, so cancelling (client gone, explicit cancel, deadline)
cancels the agent coroutine and, through it, the upstream LLM stream. Every run ends with
exactly one terminal event: run_completed or error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from app.agents import metrics
from app.agents.context import RunContext
from app.agents.control import RunControl
from app.agents.errors import RunFailure
from app.agents.events import (
    TERMINAL_TYPES,
    ErrorEvent,
    Event,
    MessageEvent,
    RunCompleted,
    RunStarted,
    TokenEvent,
)
from app.agents.protocol import Agent
from app.core.clock import utcnow
from app.llm.protocol import LLMError

log = structlog.get_logger(__name__)

OnComplete = Callable[["Run", str], Awaitable[None]]  # persist the exchange
OnCleanup = Callable[["Run"], Awaitable[None]]  # always: release the session, unregister


class Run:
    def __init__(
        self,
        *,
        run_id: str,
        agent: Agent,
        input: str,
        ctx: RunContext,
        control: RunControl,
        timeout: float,
        on_complete: OnComplete,
        on_cleanup: OnCleanup,
    ) -> None:
        self.run_id = run_id
        self.agent = agent
        self.input = input
        self.ctx = ctx
        self.control = control
        self.owner = ctx.principal_id
        self.session_id = ctx.session_id
        self._timeout = timeout
        self._on_complete = on_complete
        self._on_cleanup = on_cleanup
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._cancel_reason = "cancelled"
        self.status = "running"
        self.result: RunCompleted | None = None
        self.error: ErrorEvent | None = None
        self._started = time.monotonic()
        self._first_token_at: float | None = None

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, event: Event) -> None:
        self._seq += 1
        stamped = event.model_copy(update={"seq": self._seq, "ts": utcnow()})
        if isinstance(stamped, TokenEvent) and self._first_token_at is None:
            self._first_token_at = time.monotonic()
            metrics.TIME_TO_FIRST_TOKEN.labels(self.agent.name).observe(
                self._first_token_at - self._started
            )
        await self._queue.put(stamped)

    async def events(self) -> AsyncIterator[Event]:
        """The stamped events, ending with the terminal one. One consumer per run."""
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._drive(), name=f"run-{self.run_id}")

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def cancel(self, reason: str = "cancelled") -> None:
        if self._task is not None and not self._task.done():
            self._cancel_reason = reason
            self._task.cancel()

    def answer(self, request_id: str, value: Any) -> None:
        self.control.answer(request_id, value)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _drive(self) -> None:
        agent_name = self.agent.name
        metrics.ACTIVE_RUNS.labels(agent_name).inc()
        try:
            await self.publish(
                RunStarted(run_id=self.run_id, agent=agent_name, session_id=self.session_id)
            )
            completed = await self._run_agent()
            await self._on_complete(self, completed.output)
            self.status = "completed"
            self.result = completed
            await self.publish(completed)
        except asyncio.CancelledError:
            self.status = "cancelled"
            await self._fail(self._cancel_reason, "The run was cancelled.")
        except TimeoutError:
            self.status = "timeout"
            await self._fail("run_timeout", f"The run exceeded {self._timeout:g} s.")
        except RunFailure as exc:
            self.status = "failed"
            await self._fail(exc.code, exc.message)
        except LLMError as exc:
            self.status = "failed"
            # The message says what failed and whether retrying helps; safe to show.
            await self._fail(
                exc.code, str(exc), retryable=exc.retryable, retry_after=exc.retry_after
            )
        except Exception as exc:
            self.status = "failed"
            log.exception(
                "agent_failed", run_id=self.run_id, agent=agent_name, error_type=type(exc).__name__
            )
            await self._fail("agent_error", "The agent failed.")
        finally:
            metrics.ACTIVE_RUNS.labels(agent_name).dec()
            metrics.RUNS.labels(agent_name, self.status).inc()
            metrics.RUN_DURATION.labels(agent_name).observe(time.monotonic() - self._started)
            usage = self.ctx.llm.usage
            metrics.RUN_TOKENS.labels(agent_name, "prompt").inc(usage.prompt_tokens)
            metrics.RUN_TOKENS.labels(agent_name, "completion").inc(usage.completion_tokens)
            try:
                await self._on_cleanup(self)
            finally:
                await self._queue.put(None)

    async def _run_agent(self) -> RunCompleted:
        tokens: list[str] = []
        final_message: str | None = None
        async with asyncio.timeout(self._timeout):
            async for event in self.agent.run(self.input, self.ctx):
                if isinstance(event, TokenEvent):
                    tokens.append(event.text)
                elif isinstance(event, MessageEvent) and event.role == "assistant":
                    final_message = event.content
                if event.type in TERMINAL_TYPES:
                    continue  # the run, not the agent, decides how it ends
                await self.publish(event)
        return RunCompleted(
            output=final_message if final_message is not None else "".join(tokens),
            usage=self.ctx.llm.usage,
            cached=self.ctx.llm.all_cached,
            execution_time=round(time.monotonic() - self._started, 4),
        )

    async def _fail(
        self,
        code: str,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.error = ErrorEvent(
            code=code, message=message, retryable=retryable, retry_after=retry_after
        )
        await self.publish(self.error)

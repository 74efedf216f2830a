"""One run: drives the agent in its own task and publishes its stamped events.

The agent runs in a task the Run owns, so cancelling (client gone, explicit cancel, deadline)
cancels the agent coroutine and, through it, the upstream LLM stream. Every run ends with
exactly one terminal event: run_completed or error.

Each event is stamped (``seq``, ``ts``), serialised once, handed to the journal (the run's
log, app/agents/journal.py) and pushed to the run's feed, where any number of readers follow
it (app/agents/followers.py); the run never waits for a reader. The end is recorded and the
session released before the terminal event reaches the feed, so a client that has seen the
end can start the next run on the session and read the final record at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import structlog

from app.agents import metrics
from app.agents.context import RunContext
from app.agents.control import RunControl
from app.agents.errors import RunFailure
from app.agents.events import (
    TERMINAL_TYPES,
    ErrorEvent,
    Event,
    InputRequired,
    MessageEvent,
    RunCompleted,
    RunStarted,
    TokenEvent,
)
from app.agents.feed import LoggedEvent, RunFeed
from app.agents.journal import RunJournal
from app.agents.protocol import Agent, AgentInput
from app.agents.usage import BudgetExceeded
from app.core.clock import utcnow
from app.llm.protocol import LLMError
from app.observability import tracing
from app.observability.metrics import labelled

log = structlog.get_logger(__name__)

OnComplete = Callable[["Run", str], Awaitable[None]]  # persist the exchange
OnCleanup = Callable[["Run"], Awaitable[None]]  # always: release the session, unregister
OnDisconnect = Literal["cancel", "continue"]
# Cancel reasons after which the run saves what it produced so far to its session.
KEEP_PARTIAL = frozenset({"interrupted"})


class Run:
    def __init__(
        self,
        *,
        run_id: str,
        agent: Agent,
        input: AgentInput,
        ctx: RunContext,
        control: RunControl,
        timeout: float,
        on_complete: OnComplete,
        on_cleanup: OnCleanup,
        journal: RunJournal,
        after_seq: int = 0,
        on_disconnect: OnDisconnect = "cancel",
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
        self.journal = journal
        self.on_disconnect = on_disconnect
        self.feed = RunFeed(after=after_seq)
        self._first_seq = after_seq + 1
        self._seq = after_seq  # a task redelivered to this worker goes on after its log
        self._task: asyncio.Task[None] | None = None
        self._cancel_reason = "cancelled"
        self._ending = False  # the end is being recorded: too late to cancel
        self._cancelled = False
        self._tokens: list[str] = []
        # The first question or the end, for a caller that needs nothing else (invoke).
        self._stop: asyncio.Future[InputRequired | RunCompleted | ErrorEvent] = (
            asyncio.get_running_loop().create_future()
        )
        self.status = "running"
        self.result: RunCompleted | None = None
        self.error: ErrorEvent | None = None
        self._started = time.monotonic()
        self._first_token_at: float | None = None
        self._opening: LoggedEvent | None = None

    # -- publishing -------------------------------------------------------------------------
    def opening(self) -> LoggedEvent:
        """The run's first event (run_started), numbered now so that the journal can store it
        with the run's record; the run pushes it to its feed when it starts."""
        if self._opening is None:
            started = RunStarted(
                run_id=self.run_id, agent=self.agent.name, session_id=self.session_id
            )
            self._opening = self._number(started)
        return self._opening

    def _number(self, event: Event) -> LoggedEvent:
        self._seq += 1
        if event.seq:  # already numbered (an agent yielding one object twice): a copy
            event = event.model_copy()
        # In place, not model_copy: an event is the agent's to make and the run's from here.
        fields = event.__dict__
        fields["seq"] = self._seq
        fields["ts"] = utcnow()
        # LoggedEvent.of, inlined: once per event of every run.
        json = event.__pydantic_serializer__.to_json(event).decode()
        return LoggedEvent(self._seq, event.type, json, event)

    async def publish(self, event: Event) -> None:
        if isinstance(event, TokenEvent):
            self._tokens.append(event.text)
            if self._first_token_at is None:
                self._first_token_at = time.monotonic()
                labelled(metrics.TIME_TO_FIRST_TOKEN, self.agent.name).observe(
                    self._first_token_at - self._started
                )
        item = self._number(event)
        self.journal.log(item)
        if isinstance(event, InputRequired):
            await self.journal.asked(event)  # the record says so before any reader sees it
            self._stopped(event)
        self.feed.push(item)

    def _stopped(self, event: InputRequired | RunCompleted | ErrorEvent) -> None:
        if not self._stop.done():
            self._stop.set_result(event)

    async def first_stop(self) -> InputRequired | RunCompleted | ErrorEvent:
        """The run's first ``input_required`` event, or its terminal event if none came."""
        return await asyncio.shield(self._stop)

    async def events(self) -> AsyncIterator[Event]:
        """This run's events from its start, ending with the terminal one, for a reader in
        this process that keeps up (invoke, the worker): any number may read."""
        after = self._first_seq - 1
        while True:
            batch = self.feed.after(after)
            if batch is None:  # thousands of events without a pause: go on from the oldest kept
                log.warning("run_reader_skipped", run_id=self.run_id, after=after)
                after = self.feed.first_seq - 1
                continue
            for item in batch:
                yield item.event
                after = item.seq
                if item.terminal:
                    return
            if not batch:
                if self.feed.ended:
                    return
                await self.feed.wait(after)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._drive(), name=f"run-{self.run_id}")

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def cancel(self, reason: str = "cancelled", *, abandon: bool = False) -> None:
        """Stop the agent. ``abandon``: this attempt's ending is not logged (a task handed
        back to the queue is redone by another worker, its log going on after what is there)."""
        if self._task is None or self._task.done() or self._ending:
            return
        if not self._cancelled:  # the first reason is the one recorded
            self._cancelled = True
            self._cancel_reason = reason
        if abandon:
            self.journal.abandon()
        self._task.cancel()

    def disconnected(self, reason: str = "client_disconnected") -> None:
        """The reader that started the run left: cancel unless the run was told to go on."""
        if self.on_disconnect == "cancel":
            self.cancel(reason)

    def answer(self, request_id: str, value: Any) -> None:
        """The agent takes it (and its record says so) in ``ctx.ask``, in the agent's task,
        so a next question is recorded after this answer, never before."""
        self.control.answer(request_id, value)

    @property
    def partial_output(self) -> str:
        """The text the run streamed so far."""
        return "".join(self._tokens)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _drive(self) -> None:
        agent_name = self.agent.name
        labelled(metrics.ACTIVE_RUNS, agent_name).inc()
        terminal: RunCompleted | ErrorEvent
        # invoke_agent {agent}: a child of the request (or task) that started the run.
        trace = self.ctx.trace = tracing.start_run(
            agent=agent_name,
            run_id=self.run_id,
            session_id=self.session_id,
            provider=self.ctx.llm.provider,
        )
        try:
            if self._opening is None:  # not opened through a journal: logged as any event
                self.journal.log(self.opening())
            assert self._opening is not None  # noqa: S101 - set by opening()
            self.feed.push(self._opening)
            completed = await self._run_agent()
            await self._on_complete(self, completed.output)
            self.status = "completed"
            self.result = terminal = completed
        except asyncio.CancelledError:
            self.status = "cancelled"
            if self._cancel_reason in KEEP_PARTIAL and self._tokens:
                await self._on_complete(self, "".join(self._tokens))
            terminal = self._failure(self._cancel_reason, "The run was cancelled.")
        except TimeoutError:
            self.status = "timeout"
            terminal = self._failure("run_timeout", f"The run exceeded {self._timeout:g} s.")
        except BudgetExceeded as exc:  # stopped at a token budget, what it made kept
            self.status = "incomplete"
            if self._tokens:
                await self._on_complete(self, "".join(self._tokens))
            retryable = exc.retry_after is not None  # after the budget's reset
            terminal = self._failure(
                exc.code, exc.message, retryable=retryable, retry_after=exc.retry_after
            )
        except RunFailure as exc:
            self.status = "failed"
            terminal = self._failure(exc.code, exc.message)
        except LLMError as exc:
            self.status = "failed"
            # The message says what failed and whether retrying helps; safe to show.
            terminal = self._failure(
                exc.code, str(exc), retryable=exc.retryable, retry_after=exc.retry_after
            )
        except Exception as exc:
            self.status = "failed"
            log.exception(
                "agent_failed", run_id=self.run_id, agent=agent_name, error_type=type(exc).__name__
            )
            terminal = self._failure("agent_error", "The agent failed.")
        finally:
            labelled(metrics.ACTIVE_RUNS, agent_name).dec()
            labelled(metrics.RUNS, agent_name, self.status).inc()
            labelled(metrics.RUN_DURATION, agent_name).observe(time.monotonic() - self._started)
            usage = self.ctx.llm.usage
            labelled(metrics.RUN_TOKENS, agent_name, "prompt").inc(usage.prompt_tokens)
            labelled(metrics.RUN_TOKENS, agent_name, "completion").inc(usage.completion_tokens)
        if trace is not None:
            failed = self.error is not None and self.status in ("failed", "timeout")
            error_code = self.error.code if failed and self.error else None  # cancel: no error
            trace.ended(status=self.status, usage=self.ctx.llm.usage, error_code=error_code)
        await self._end(terminal)

    async def _end(self, terminal: RunCompleted | ErrorEvent) -> None:
        """Log, record and release, then let the readers see the end."""
        self._ending = True
        item = self._number(terminal)
        self.journal.log(item)
        try:
            await self.journal.close(self, terminal)
            await self._on_cleanup(self)
        finally:
            self._stopped(terminal)
            self.feed.push(item)

    async def _run_agent(self) -> RunCompleted:
        final_message: str | None = None
        async with asyncio.timeout(self._timeout):
            async for event in self.agent.run(self.input, self.ctx):
                if isinstance(event, MessageEvent) and event.role == "assistant":
                    final_message = event.content
                if event.type in TERMINAL_TYPES:
                    continue  # the run, not the agent, decides how it ends
                await self.publish(event)
        return RunCompleted(
            output=final_message if final_message is not None else "".join(self._tokens),
            usage=self.ctx.llm.usage,
            cached=self.ctx.llm.all_cached,
            execution_time=round(time.monotonic() - self._started, 4),
        )

    def _failure(
        self,
        code: str,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> ErrorEvent:
        self.error = ErrorEvent(
            code=code, message=message, retryable=retryable, retry_after=retry_after
        )
        return self.error

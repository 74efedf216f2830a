"""RunService: starts runs, owns their sessions' locks, keeps their records and logs, and
reaches live runs (control, events) from any process."""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from app.agents.call_budget import check_budgets, for_run
from app.agents.context import RunContext
from app.agents.control import RunControl
from app.agents.control_bus import ControlReply, ControlRequest, RunControlBus
from app.agents.errors import AgentNotFound, InvalidInput
from app.agents.events import InputRequired
from app.agents.feed import RunFeed
from app.agents.followers import FollowItem, RunFollowers
from app.agents.journal import RunJournal, end_lost_run
from app.agents.log_writer import RunLogBatcher
from app.agents.protocol import Agent, input_text
from app.agents.registry import AgentRegistry
from app.agents.run import Run
from app.agents.run_llm import CachingLLM, RunLLM
from app.agents.run_request import RunRequest, new_record
from app.agents.sessions import SessionService
from app.agents.tools.registry import ToolRegistry
from app.agents.usage import UsageMeter
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import NotFound, Unprocessable
from app.llm.types import ChatMessage
from app.observability.metrics import CONCURRENCY_REJECTIONS
from app.security.principals import Principal
from app.security.tenant_limits import PrincipalLimits, TenantLimits
from app.store.agent_state import SessionState
from app.store.concurrency import MemorySlots, SlotLimiter, TooManyConcurrentRuns
from app.store.run_records import RunRecord, RunStatus
from app.store.run_store import RunQuery, RunStore

log = structlog.get_logger(__name__)

LOCK_MARGIN_SECONDS = 30
RUN_SLOT_RETRY_AFTER_SECONDS = 1  # foreground runs are short; the hint is a guess either way
# A foreground run's record unfinished, held by no live process, untouched this long: lost.
LOST_AFTER_SECONDS = 10


class RunService:
    def __init__(
        self,
        *,
        settings: Settings,
        agents: AgentRegistry,
        tools: ToolRegistry,
        llm: CachingLLM,
        sessions: SessionService,
        store: RunStore,
        bus: RunControlBus | None = None,
        slots: SlotLimiter | None = None,
        meter: UsageMeter,
        limits: TenantLimits,
    ) -> None:
        self._settings = settings
        self.meter = meter  # budgets and the usage ledger (app/agents/usage.py)
        self.limits = limits  # each principal's, from its tenant's policy
        self.agents = agents
        self.tools = tools
        self._llm = llm
        self._sessions = sessions
        self._live: dict[str, Run] = {}
        self._bus = bus
        # Foreground runs holding one of their principal's MAX_CONCURRENT_RUNS_PER_PRINCIPAL
        # slots (shared across replicas with Redis); released when the run ends.
        self._slots = slots or MemorySlots()
        self._counted: set[str] = set()
        self.store = store
        self._log_runs = settings.RUN_LOG_ENABLED
        self._log_batcher = RunLogBatcher(store)  # every run's log writes, batched together
        self.followers = RunFollowers(store, local_feed=self._local_feed, reap=self.reap_if_lost)

    # -- starting ----------------------------------------------------------------------------
    async def start(
        self,
        request: RunRequest,
        *,
        run_id: str | None = None,
        foreground: bool = True,
        after_seq: int = 0,
        on_asked: Callable[[InputRequired], Awaitable[None]] | None = None,
    ) -> Run:
        """Start a run. A background task passes its task id as the run id, the last seq of
        its log, and ``foreground=False``: tasks are capped by MAX_ACTIVE_TASKS_PER_PRINCIPAL
        instead, and their worker keeps their record (``on_asked`` writes a question to it
        before any reader sees the event). Raises TooManyConcurrentRuns when the
        principal is at its cap, BudgetExhausted when one of its token budgets is spent, and
        the session's errors (busy, not found)."""
        limits = await self.limits.of(request.principal.tenant)
        if not limits.allows(request.agent):  # as if it did not exist, for this tenant
            raise AgentNotFound(request.agent)
        agent = self.agents.require(request.agent)
        if foreground:  # a task was checked when submitted
            await check_budgets(self.meter, request.principal.id, limits)
        run_id = run_id or uuid.uuid4().hex
        counted = foreground and limits.max_concurrent_runs > 0
        if counted:
            await self._take_slot(request.principal.id, run_id, limits.max_concurrent_runs)
        session_id = request.session_id
        try:
            if session_id is None and foreground and request.store:
                session_id = await self._start_session(request, agent.name, run_id)
                history: list[ChatMessage] = []
            else:
                history = await self._claim_history(request, agent.name, run_id)
            if request.history is not None:
                history = request.history
            journal = RunJournal(
                self.store if self._log_runs or not foreground else None,
                run_id,
                keeps_record=foreground,
                batcher=self._log_batcher,
            )
            journal.on_asked = on_asked
            if run_id in self._counted:  # its slot goes back with the record's end
                journal.also_on_finish = self._slots.release_commands(request.principal.id, run_id)
            run = self._build(
                request, agent, run_id, session_id, history, journal, after_seq, limits
            )
            record = new_record(request, agent.name, run_id, session_id, self.holder)
            await journal.open(record, run.opening())
        except BaseException:
            await self._release(request.principal.id, run_id, session_id)
            raise
        self._live[run_id] = run
        run.start()
        # A run's record names its holder (a task's: its worker's); one without a record is
        # announced before the caller (and so the client) learns the id.
        if self._bus is not None and foreground and not journal.keeps_record:
            await self._bus.announce(run_id, request.principal.id)
        return run

    @property
    def holder(self) -> str | None:  # this process in run records, when runs are shared
        return self._bus.holder if self._bus is not None else None

    def _build(
        self,
        request: RunRequest,
        agent: Agent,
        run_id: str,
        session_id: str | None,
        history: list[ChatMessage],
        journal: RunJournal,
        after_seq: int,
        limits: PrincipalLimits,
    ) -> Run:
        settings = self._settings
        control = RunControl()
        # A weak reference: a strong one is a cycle (run -> ctx -> publish -> run) that left
        # all a finished run held for the collector (docs/decisions.md, issue 11 fourth pass).
        run_ref: Callable[[], Run | None] = lambda: None  # noqa: E731 - replaced below

        async def publish(event: Any) -> None:
            if (run := run_ref()) is not None:  # alive while its agent runs (its task holds it)
                await run.publish(event)

        ctx = RunContext(
            run_id=run_id,
            agent=agent.name,
            principal_id=request.principal.id,
            session_id=session_id,
            history=history,
            llm=RunLLM(
                self._llm,
                bypass_cache=request.bypass_cache,
                principal_id=request.principal.id,
                meter=self.meter,
                agent=agent.name,
                budget=for_run(
                    self.meter,
                    request.principal.id,
                    agent.name,
                    limits,
                    prices=settings.MODEL_PRICES,
                    default_model=str(getattr(self._llm, "default_model", "")),
                ),
            ),
            tools=self.tools,
            max_steps=request.max_steps or settings.MAX_STEPS,
            deadline=time.monotonic() + settings.RUN_TIMEOUT_SECONDS,
            input_timeout=settings.INPUT_TIMEOUT_SECONDS,
            params=request.params,
            control=control,
            publish=publish,
            answered=journal.answered,
            state=SessionState(self._sessions.state, session_id) if session_id else None,
        )
        run = Run(
            run_id=run_id,
            agent=agent,
            input=request.input,
            ctx=ctx,
            control=control,
            timeout=settings.RUN_TIMEOUT_SECONDS,
            on_complete=self._save_exchange,
            on_cleanup=self._cleanup,
            journal=journal,
            after_seq=after_seq,
            on_disconnect=request.on_disconnect,
        )
        run_ref = weakref.ref(run)
        return run

    async def _start_session(self, request: RunRequest, agent: str, run_id: str) -> str | None:
        """A new session of the caller's, held by this run (call, get an id, go on). The
        store away: the run goes on without one (session_id null), as a stateless run."""
        try:
            session = await self._sessions.start_for_run(
                owner=request.principal,
                agent=agent,
                run_id=run_id,
                lock_seconds=self._lock_seconds(),
            )
        except Exception as exc:
            log.warning("session_start_failed", run_id=run_id, error=type(exc).__name__)
            return None
        return session.id

    def _lock_seconds(self) -> int:
        return int(self._settings.RUN_TIMEOUT_SECONDS) + LOCK_MARGIN_SECONDS

    async def _take_slot(self, owner: str, run_id: str, limit: int) -> None:
        if not await self._slots.acquire(owner, run_id, limit=limit):
            CONCURRENCY_REJECTIONS.labels(kind="runs").inc()
            raise TooManyConcurrentRuns(
                f"You already have {limit} runs in flight, the most one principal may have "
                "at once; retry when one has ended.",
                limit=limit,
                retry_after=RUN_SLOT_RETRY_AFTER_SECONDS,
            )
        self._counted.add(run_id)

    async def _release_slot(self, owner: str, run_id: str) -> None:
        if run_id in self._counted:
            self._counted.discard(run_id)
            await self._slots.release(owner, run_id)

    async def _claim_history(
        self, request: RunRequest, agent: str, run_id: str
    ) -> list[ChatMessage]:
        if request.session_id is None:
            return []
        principal = request.principal

        async def interrupt(holder: str, reason: str) -> None:
            await self.control(
                ControlRequest(
                    run_id=holder, principal_id=principal.id, action="cancel", reason=reason
                )
            )

        return await self._sessions.claim_for_run(
            owner=principal,
            session_id=request.session_id,
            agent=agent,
            run_id=run_id,
            lock_seconds=self._lock_seconds(),
            history_limit=self._settings.SESSION_MAX_MESSAGES,
            if_busy=request.if_busy,
            wait_seconds=self._settings.SESSION_BUSY_WAIT_SECONDS,
            interrupt=interrupt,
        )

    async def _release(self, owner: str, run_id: str, session_id: str | None) -> None:
        """Undo a start that failed half-way: the slot, and the session if this run took it."""
        await self._release_slot(owner, run_id)
        if session_id is not None:
            try:
                await self._sessions.release_run(session_id=session_id, run_id=run_id)
            except Exception as exc:  # the lock expires by itself
                log.warning("session_unlock_failed", run_id=run_id, error=type(exc).__name__)

    async def _save_exchange(self, run: Run, output: str) -> None:
        if run.session_id is None or not output:
            return
        try:
            await self._sessions.append_exchange(
                session_id=run.session_id, user=input_text(run.input), assistant=output
            )
        except Exception as exc:  # the answer was delivered; losing the memory is logged
            log.warning("session_save_failed", run_id=run.run_id, error=type(exc).__name__)

    async def _cleanup(self, run: Run) -> None:
        self._live.pop(run.run_id, None)
        if run.journal.also_sent and run.run_id in self._counted:  # released with the record
            self._counted.discard(run.run_id)
            self._slots.released(run.owner, run.run_id)
        if self._bus is not None:
            await self._bus.retire(run.run_id)
        await self._release(run.owner, run.run_id, run.session_id)

    # -- reaching live runs --------------------------------------------------------------------
    async def control(self, request: ControlRequest) -> None:
        """Cancel a run or answer its input request, wherever it runs. Raises AppError."""
        reply = self.apply_locally(request)
        if reply is None and self._bus is not None:
            reply = await self._bus.request(request)
        if reply is None or reply.outcome == "run_not_found":
            raise NotFound("No live run with this id.", code="run_not_found")
        if reply.outcome == "input_request_not_found":
            raise NotFound(
                "The run is not waiting for this input request.", code="input_request_not_found"
            )
        if reply.outcome == "invalid_input":
            raise Unprocessable(reply.detail, code="invalid_input")

    def apply_locally(self, request: ControlRequest) -> ControlReply | None:
        """The outcome when this process holds the run; None when it does not."""
        run = self._live.get(request.run_id)
        if run is None:
            return None
        if run.owner != request.principal_id:
            return ControlReply(outcome="run_not_found")
        if request.action == "cancel":
            run.cancel(request.reason or "cancelled")
            return ControlReply(outcome="accepted")
        try:
            run.answer(request.request_id or "", request.value)
        except KeyError:
            return ControlReply(outcome="input_request_not_found")
        except InvalidInput as exc:
            return ControlReply(outcome="invalid_input", detail=str(exc))
        return ControlReply(outcome="accepted")

    def _local_feed(self, run_id: str) -> RunFeed | None:
        run = self._live.get(run_id)
        return run.feed if run is not None else None

    async def get(self, *, owner: Principal, run_id: str) -> RunRecord:
        """The caller's run (foreground or task); anyone else's is ``run_not_found``."""
        record = await self.store.get(run_id)
        if record is None or record.owner != owner.id:
            raise NotFound("No run with this id.", code="run_not_found")
        if not record.finished:
            await self.reap_if_lost(record)
        return record

    async def list(
        self,
        *,
        owner: Principal,
        session_id: str | None,
        status: RunStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[list[RunRecord], int]:
        query = RunQuery(owner=owner.id, session_id=session_id, status=status)
        return await self.store.list(query, limit=limit, offset=offset)

    def follow(self, run_id: str, *, after: int) -> AsyncIterator[FollowItem]:
        """Every event of the run after ``after``, then live ones (any process)."""
        return self.followers.follow(run_id, after=after)

    def follow_started(self, run: Run) -> AsyncIterator[FollowItem]:
        """The events of a run this process just started, for the client that started it."""
        return self.followers.follow(run.run_id, after=0, feed=run.feed)

    def follow_batches(
        self, run_id: str, *, after: int, started: Run | None = None
    ) -> AsyncGenerator[builtins.list[FollowItem], None]:
        """``follow`` (``follow_started``) in the batches that were ready together."""
        feed = started.feed if started is not None else None
        return self.followers.follow_batches(run_id, after=after, feed=feed)

    async def reap_if_lost(self, record: RunRecord) -> None:
        """End a foreground run whose process died: no one holds it, and its record has not
        moved for LOST_AFTER_SECONDS. Its log ends with an error event ``run_lost``."""
        if record.kind != "run" or record.finished or record.id in self._live:
            return
        if (utcnow() - record.updated_at).total_seconds() < LOST_AFTER_SECONDS:
            return
        try:
            if self._bus is not None and await self._bus.registry.lookup(record.id) is not None:
                return
        except Exception:  # cannot tell: leave it for the next look
            return
        await end_lost_run(self.store, record.id)

    async def aclose(self) -> None:
        runs = list(self._live.values())
        for run in runs:
            run.cancel("shutdown")
        if runs:
            await asyncio.gather(*(run.wait() for run in runs), return_exceptions=True)
        await self._slots.aclose()

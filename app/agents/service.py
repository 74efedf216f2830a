"""RunService: starts runs, owns their sessions' locks, and reaches live runs anywhere."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.agents.context import RunContext
from app.agents.control import RunControl
from app.agents.control_bus import ControlReply, ControlRequest, RunControlBus
from app.agents.errors import InvalidInput
from app.agents.registry import AgentRegistry
from app.agents.run import Run
from app.agents.run_llm import CachingLLM, RunLLM
from app.agents.sessions import SessionService
from app.agents.tools.registry import ToolRegistry
from app.core.config import Settings
from app.core.errors import NotFound, Unprocessable
from app.llm.types import ChatMessage
from app.observability.metrics import CONCURRENCY_REJECTIONS
from app.security.principals import Principal
from app.store.concurrency import MemorySlots, SlotLimiter, TooManyConcurrentRuns

log = structlog.get_logger(__name__)

LOCK_MARGIN_SECONDS = 30
RUN_SLOT_RETRY_AFTER_SECONDS = 1  # foreground runs are short; the hint is a guess either way


@dataclass(frozen=True, slots=True)
class RunRequest:
    agent: str
    input: str
    principal: Principal
    session_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    bypass_cache: bool = False


class RunService:
    def __init__(
        self,
        *,
        settings: Settings,
        agents: AgentRegistry,
        tools: ToolRegistry,
        llm: CachingLLM,
        sessions: SessionService,
        bus: RunControlBus | None = None,
        slots: SlotLimiter | None = None,
    ) -> None:
        self._settings = settings
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

    # -- starting ----------------------------------------------------------------------------
    async def start(
        self, request: RunRequest, *, run_id: str | None = None, foreground: bool = True
    ) -> Run:
        """Start a run. A background task passes its task id as the run id and
        ``foreground=False``: tasks are capped by MAX_ACTIVE_TASKS_PER_PRINCIPAL instead.
        Raises TooManyConcurrentRuns when the principal is at its cap."""
        agent = self.agents.require(request.agent)
        run_id = run_id or uuid.uuid4().hex
        counted = foreground and self._settings.MAX_CONCURRENT_RUNS_PER_PRINCIPAL > 0
        if counted:
            await self._take_slot(request.principal.id, run_id)
        try:
            history = await self._claim_history(request, agent.name, run_id)
        except BaseException:
            if counted:
                await self._release_slot(request.principal.id, run_id)
            raise
        settings = self._settings
        control = RunControl()
        run: Run | None = None

        async def publish(event: Any) -> None:
            assert run is not None  # noqa: S101 - set before the agent can publish
            await run.publish(event)

        ctx = RunContext(
            run_id=run_id,
            agent=agent.name,
            principal_id=request.principal.id,
            session_id=request.session_id,
            history=history,
            llm=RunLLM(
                self._llm, bypass_cache=request.bypass_cache, principal_id=request.principal.id
            ),
            tools=self.tools,
            max_steps=request.max_steps or settings.MAX_STEPS,
            deadline=time.monotonic() + settings.RUN_TIMEOUT_SECONDS,
            input_timeout=settings.INPUT_TIMEOUT_SECONDS,
            params=request.params,
            control=control,
            publish=publish,
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
        )
        self._live[run_id] = run
        run.start()
        if self._bus is not None:  # before the caller (and so the client) learns the id
            await self._bus.announce(run_id, request.principal.id)
        return run

    async def _take_slot(self, owner: str, run_id: str) -> None:
        limit = self._settings.MAX_CONCURRENT_RUNS_PER_PRINCIPAL
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
        return await self._sessions.claim_for_run(
            owner=request.principal,
            session_id=request.session_id,
            agent=agent,
            run_id=run_id,
            lock_seconds=int(self._settings.RUN_TIMEOUT_SECONDS) + LOCK_MARGIN_SECONDS,
            history_limit=self._settings.SESSION_MAX_MESSAGES,
        )

    async def _save_exchange(self, run: Run, output: str) -> None:
        if run.session_id is None:
            return
        try:
            await self._sessions.append_exchange(
                session_id=run.session_id, user=run.input, assistant=output
            )
        except Exception as exc:  # the answer was delivered; losing the memory is logged
            log.warning("session_save_failed", run_id=run.run_id, error=type(exc).__name__)

    async def _cleanup(self, run: Run) -> None:
        self._live.pop(run.run_id, None)
        if self._bus is not None:
            await self._bus.retire(run.run_id)
        await self._release_slot(run.owner, run.run_id)
        if run.session_id is not None:
            try:
                await self._sessions.release_run(session_id=run.session_id, run_id=run.run_id)
            except Exception as exc:  # the lock expires by itself
                log.warning("session_unlock_failed", run_id=run.run_id, error=type(exc).__name__)

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
            run.cancel()
            return ControlReply(outcome="accepted")
        try:
            run.answer(request.request_id or "", request.value)
        except KeyError:
            return ControlReply(outcome="input_request_not_found")
        except InvalidInput as exc:
            return ControlReply(outcome="invalid_input", detail=str(exc))
        return ControlReply(outcome="accepted")

    async def aclose(self) -> None:
        runs = list(self._live.values())
        for run in runs:
            run.cancel("shutdown")
        if runs:
            await asyncio.gather(*(run.wait() for run in runs), return_exceptions=True)
        await self._slots.aclose()

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
from app.security.principals import Principal

log = structlog.get_logger(__name__)

LOCK_MARGIN_SECONDS = 30


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
    ) -> None:
        self._settings = settings
        self.agents = agents
        self.tools = tools
        self._llm = llm
        self._sessions = sessions
        self._live: dict[str, Run] = {}
        self._bus = bus

    # -- starting ----------------------------------------------------------------------------
    async def start(self, request: RunRequest, *, run_id: str | None = None) -> Run:
        """Start a run (a background task passes its task id as the run id)."""
        agent = self.agents.require(request.agent)
        run_id = run_id or uuid.uuid4().hex
        history: list[ChatMessage] = []
        if request.session_id is not None:
            history = await self._sessions.claim_for_run(
                owner=request.principal,
                session_id=request.session_id,
                agent=agent.name,
                run_id=run_id,
                lock_seconds=int(self._settings.RUN_TIMEOUT_SECONDS) + LOCK_MARGIN_SECONDS,
                history_limit=self._settings.SESSION_MAX_MESSAGES,
            )
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
            llm=RunLLM(self._llm, bypass_cache=request.bypass_cache),
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
        return run

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

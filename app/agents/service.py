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
from app.agents.control_bus import RunControlBus
from app.agents.errors import InvalidInput
from app.agents.registry import AgentRegistry
from app.agents.run import Run
from app.agents.run_llm import CachingLLM, RunLLM
from app.agents.tools.registry import ToolRegistry
from app.core.config import Settings
from app.core.errors import AppError, Conflict, NotFound
from app.llm.types import ChatMessage
from app.security.principals import Principal
from app.store.sessions import SessionStore

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
        sessions: SessionStore,
    ) -> None:
        self._settings = settings
        self.agents = agents
        self.tools = tools
        self._llm = llm
        self._sessions = sessions
        self._live: dict[str, Run] = {}
        self.bus: RunControlBus | None = None

    # -- starting ----------------------------------------------------------------------------
    async def start(self, request: RunRequest, *, run_id: str | None = None) -> Run:
        """Start a run (a background task passes its task id as the run id)."""
        agent = self.agents.get(request.agent)
        if agent is None:
            raise NotFound(f"No agent named {request.agent!r}.", code="agent_not_found")
        run_id = run_id or uuid.uuid4().hex
        history: list[ChatMessage] = []
        if request.session_id is not None:
            history = await self._claim_session(request, run_id)
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

    async def _claim_session(self, request: RunRequest, run_id: str) -> list[ChatMessage]:
        session_id = request.session_id
        assert session_id is not None  # noqa: S101
        session = await self._sessions.get(session_id)
        if session is None or session.owner != request.principal.id:
            raise NotFound("No session with this id.", code="session_not_found")
        if session.agent != request.agent:
            raise Conflict(
                f"This session belongs to agent {session.agent!r}.", code="session_agent_mismatch"
            )
        ttl = int(self._settings.RUN_TIMEOUT_SECONDS) + LOCK_MARGIN_SECONDS
        if not await self._sessions.acquire_run_lock(session_id, run_id=run_id, ttl_seconds=ttl):
            raise Conflict("Another run is using this session.", code="session_busy")
        try:
            return await self._sessions.messages(
                session_id, limit=self._settings.SESSION_MAX_MESSAGES, offset=0
            )
        except BaseException:
            await self._sessions.release_run_lock(session_id, run_id=run_id)
            raise

    async def _save_exchange(self, run: Run, output: str) -> None:
        if run.session_id is None:
            return
        try:
            await self._sessions.append(
                run.session_id,
                [
                    ChatMessage(role="user", content=run.input),
                    ChatMessage(role="assistant", content=output),
                ],
            )
        except Exception as exc:  # the answer was delivered; losing the memory is logged
            log.warning("session_save_failed", run_id=run.run_id, error=type(exc).__name__)

    async def _cleanup(self, run: Run) -> None:
        self._live.pop(run.run_id, None)
        if run.session_id is not None:
            try:
                await self._sessions.release_run_lock(run.session_id, run_id=run.run_id)
            except Exception as exc:  # the lock expires by itself
                log.warning("session_unlock_failed", run_id=run.run_id, error=type(exc).__name__)

    # -- reaching live runs --------------------------------------------------------------------
    async def control(
        self, *, run_id: str, principal: Principal, action: str, payload: dict[str, Any]
    ) -> None:
        """Cancel a run or answer its input request, wherever it runs. Raises AppError."""
        request = {"run_id": run_id, "principal": principal.id, "action": action, **payload}
        reply = await self._apply_locally(request)
        if reply is None and self.bus is not None:
            reply = await self.bus.request(request)
        if reply is None:
            raise NotFound("No live run with this id.", code="run_not_found")
        if reply["status"] >= 400:
            raise AppError(reply["detail"], status=reply["status"], code=reply["code"])

    async def _apply_locally(self, request: dict[str, Any]) -> dict[str, Any] | None:
        run = self._live.get(str(request.get("run_id")))
        if run is None:
            return None
        if run.owner != request.get("principal"):
            return {"status": 404, "code": "run_not_found", "detail": "No live run with this id."}
        if request.get("action") == "cancel":
            run.cancel()
            return {"status": 202}
        try:
            run.answer(str(request.get("request_id")), request.get("value"))
        except KeyError:
            return {
                "status": 404,
                "code": "input_request_not_found",
                "detail": "The run is not waiting for this input request.",
            }
        except InvalidInput as exc:
            return {"status": 422, "code": "invalid_input", "detail": str(exc)}
        return {"status": 202}

    async def handle_bus_request(self, request: dict[str, Any]) -> dict[str, Any] | None:
        return await self._apply_locally(request)

    async def aclose(self) -> None:
        runs = list(self._live.values())
        for run in runs:
            run.cancel("shutdown")
        if runs:
            await asyncio.gather(*(run.wait() for run in runs), return_exceptions=True)

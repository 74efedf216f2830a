"""SessionService: the one home of "a session belongs to one principal and one agent".

Routes, foreground runs and background tasks all ask here. Another principal's session is
answered exactly like a missing one (``session_not_found``), and so is a malformed id, so ids
cannot be probed.
"""

from __future__ import annotations

import builtins
import re

from app.agents.registry import AgentRegistry
from app.core.errors import Conflict, NotFound
from app.llm.types import ChatMessage
from app.security.principals import Principal
from app.store.sessions import SessionRecord, SessionStore

SESSION_ID = re.compile(r"[0-9a-f]{32}")


def session_not_found() -> NotFound:
    return NotFound("No session with this id.", code="session_not_found")


class SessionService:
    def __init__(self, *, store: SessionStore, agents: AgentRegistry) -> None:
        self.store = store
        self._agents = agents

    async def create(self, *, owner: Principal, agent: str) -> SessionRecord:
        self._agents.require(agent)
        return await self.store.create(owner=owner.id, agent=agent)

    async def list(
        self, *, owner: Principal, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        return await self.store.list(owner=owner.id, limit=limit, offset=offset)

    async def get_owned(self, *, owner: Principal, session_id: str) -> SessionRecord:
        """The caller's session (refreshing its expiry), else ``session_not_found``."""
        if not SESSION_ID.fullmatch(session_id):
            raise session_not_found()
        record = await self.store.get(session_id)
        if record is None or record.owner != owner.id:
            raise session_not_found()
        return record

    async def messages(
        self, *, owner: Principal, session_id: str, limit: int, offset: int
    ) -> tuple[SessionRecord, builtins.list[ChatMessage]]:
        record = await self.get_owned(owner=owner, session_id=session_id)
        return record, await self.store.messages(session_id, limit=limit, offset=offset)

    async def delete(self, *, owner: Principal, session_id: str) -> None:
        await self.get_owned(owner=owner, session_id=session_id)
        if not await self.store.delete(session_id):
            raise session_not_found()  # expired or deleted by a concurrent request

    async def claim_for_run(
        self,
        *,
        owner: Principal,
        session_id: str,
        agent: str,
        run_id: str,
        lock_seconds: int,
        history_limit: int,
    ) -> builtins.list[ChatMessage]:
        """Take the session for one run and return its history; the caller must release it."""
        session = await self.get_owned(owner=owner, session_id=session_id)
        if session.agent != agent:
            raise Conflict(
                f"This session belongs to agent {session.agent!r}.", code="session_agent_mismatch"
            )
        if not await self.store.acquire_run_lock(
            session_id, run_id=run_id, ttl_seconds=lock_seconds
        ):
            raise Conflict("Another run is using this session.", code="session_busy")
        try:
            return await self.store.messages(session_id, limit=history_limit, offset=0)
        except BaseException:
            await self.store.release_run_lock(session_id, run_id=run_id)
            raise

    async def release_run(self, *, session_id: str, run_id: str) -> None:
        await self.store.release_run_lock(session_id, run_id=run_id)

    async def append_exchange(self, *, session_id: str, user: str, assistant: str) -> None:
        await self.store.append(
            session_id,
            [
                ChatMessage(role="user", content=user),
                ChatMessage(role="assistant", content=assistant),
            ],
        )

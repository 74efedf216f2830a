"""A response's conversation kept in its run's session: what the client sent goes there, so
that a later response with ``previous_response_id`` sees it; instructions go only to the run
they came with (OpenAI does not carry them over)."""

from __future__ import annotations

from app.agents.sessions import SessionService
from app.core.config import Settings
from app.core.errors import Conflict
from app.llm.types import ChatMessage
from app.security.principals import Principal


async def seed_session(
    sessions: SessionService,
    principal: Principal,
    agent: str,
    session_id: str | None,
    messages: list[ChatMessage],
) -> str:
    """``messages`` appended to the session (a new one of the caller's when None)."""
    if session_id is None:
        session_id = (await sessions.create(owner=principal, agent=agent)).id
    elif await sessions.holder(session_id=session_id) is not None:
        raise Conflict("Another run is using this conversation.", code="session_busy")
    await sessions.store.append(session_id, messages)
    return session_id


async def history_with(
    sessions: SessionService, settings: Settings, session_id: str | None, instructions: str
) -> list[ChatMessage]:
    """The session's messages after this response's instructions."""
    kept: list[ChatMessage] = []
    if session_id is not None:
        limit = settings.SESSION_MAX_MESSAGES
        kept = await sessions.store.messages(session_id, limit=limit, offset=0)
    return [ChatMessage(role="system", content=instructions), *kept]

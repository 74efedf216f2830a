"""Session routes: create, list, read, read history, delete. A session belongs to one principal.

Another principal's session answers exactly like a missing one (404 ``session_not_found``), so
ids cannot be probed; a malformed id is a 404 too, never a 422 that would reveal the id format.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import ServicesDep, SessionsReadDep, SessionsWriteDep
from app.api.responses import Responses, problems
from app.api.schemas.sessions import (
    AGENT_NAME_PATTERN,
    MessageList,
    SessionCreate,
    SessionList,
    SessionResponse,
)
from app.core.errors import NotFound
from app.security.principals import Principal
from app.store.sessions import SessionRecord, SessionStore

router = APIRouter(prefix="/sessions", tags=["sessions"])


def _problems(*statuses: int) -> Responses:
    return problems(401, 403, *statuses)


SESSION_ID = re.compile(r"[0-9a-f]{32}")
AGENT_NAME = re.compile(AGENT_NAME_PATTERN)
MAX_OFFSET = 1_000_000_000  # far past any real history; keeps Redis range arguments in bounds

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


async def ensure_agent_exists(name: str, request: Request) -> None:
    """Refuse a session for an agent this service does not serve."""
    if not AGENT_NAME.fullmatch(name) or request.app.state.services.agents.get(name) is None:
        raise NotFound(f"No agent named {name!r}.", code="agent_not_found")


def _not_found() -> NotFound:
    return NotFound("No session with this id.", code="session_not_found")


async def _owned_session(
    store: SessionStore, principal: Principal, session_id: str
) -> SessionRecord:
    if not SESSION_ID.fullmatch(session_id):
        raise _not_found()
    record = await store.get(session_id)
    if record is None or record.owner != principal.id:
        raise _not_found()
    return record


def _response(record: SessionRecord) -> SessionResponse:
    return SessionResponse.model_validate(record.model_dump())


@router.post(
    "",
    response_model=SessionResponse,
    status_code=status.HTTP_201_CREATED,
    responses=_problems(404, 422),
    summary="Create a session for an agent",
)
async def create_session(
    body: SessionCreate,
    request: Request,
    response: Response,
    principal: SessionsWriteDep,
    services: ServicesDep,
) -> SessionResponse:
    await ensure_agent_exists(body.agent, request)
    record = await services.sessions.create(owner=principal.id, agent=body.agent)
    response.headers["Location"] = str(request.url_for("get_session", session_id=record.id).path)
    return _response(record)


@router.get(
    "",
    response_model=SessionList,
    responses=_problems(422),
    summary="List own sessions, newest first",
)
async def list_sessions(
    principal: SessionsReadDep, services: ServicesDep, limit: Limit = 20, offset: Offset = 0
) -> SessionList:
    records, total = await services.sessions.list(owner=principal.id, limit=limit, offset=offset)
    return SessionList(
        items=[_response(record) for record in records], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{session_id}",
    response_model=SessionResponse,
    responses=_problems(404),
    summary="Read a session (refreshes its expiry)",
)
async def get_session(
    session_id: str, principal: SessionsReadDep, services: ServicesDep
) -> SessionResponse:
    return _response(await _owned_session(services.sessions, principal, session_id))


@router.get(
    "/{session_id}/messages",
    response_model=MessageList,
    responses=_problems(404, 422),
    summary="Read a session's history, oldest first",
)
async def list_messages(
    session_id: str,
    principal: SessionsReadDep,
    services: ServicesDep,
    limit: Limit = 20,
    offset: Offset = 0,
) -> MessageList:
    record = await _owned_session(services.sessions, principal, session_id)
    items = await services.sessions.messages(session_id, limit=limit, offset=offset)
    return MessageList(items=items, total=record.message_count, limit=limit, offset=offset)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_problems(404),
    summary="Delete a session and its history",
)
async def delete_session(
    session_id: str, principal: SessionsWriteDep, services: ServicesDep
) -> Response:
    await _owned_session(services.sessions, principal, session_id)
    if not await services.sessions.delete(session_id):
        raise _not_found()  # expired or deleted by a concurrent request
    return Response(status_code=status.HTTP_204_NO_CONTENT)

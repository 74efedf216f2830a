"""Session routes: create, list, read, read history, delete. A session belongs to one principal.

Another principal's session answers exactly like a missing one (404 ``session_not_found``), so
ids cannot be probed; a malformed id is a 404 too, never a 422 that would reveal the id format.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import SessionServiceDep, SessionsReadDep, SessionsWriteDep
from app.api.responses import SESSION_CREATE_NOT_FOUND, SESSION_NOT_FOUND, Responses, problems
from app.api.schemas.sessions import (
    MessageList,
    SessionCreate,
    SessionList,
    SessionResponse,
)
from app.store.sessions import SessionRecord

router = APIRouter(prefix="/sessions", tags=["sessions"])


def _problems(*statuses: int) -> Responses:
    return problems(401, 403, *statuses)


MAX_OFFSET = 1_000_000_000  # far past any real history; keeps Redis range arguments in bounds

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


def _response(record: SessionRecord) -> SessionResponse:
    return SessionResponse.model_validate(record.model_dump())


@router.post(
    "",
    response_model=SessionResponse,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, docs={404: SESSION_CREATE_NOT_FOUND}),
    summary="Create a session for an agent",
)
async def create_session(
    body: SessionCreate,
    request: Request,
    response: Response,
    principal: SessionsWriteDep,
    sessions: SessionServiceDep,
) -> SessionResponse:
    """A new, empty conversation with one agent, owned by the caller. Pass its `id` as
    `session_id` to invoke, stream or a task: the agent then sees the history, and each
    exchange is appended (the last SESSION_MAX_MESSAGES messages are kept). A session
    expires SESSION_TTL_SECONDS after its last use. `Location` names the new session. Needs
    the `sessions:write` scope; not idempotent (each call makes a new session).
    """
    record = await sessions.create(owner=principal, agent=body.agent)
    response.headers["Location"] = str(request.url_for("get_session", session_id=record.id).path)
    return _response(record)


@router.get(
    "",
    response_model=SessionList,
    responses=_problems(422),
    summary="List own sessions, newest first",
)
async def list_sessions(
    principal: SessionsReadDep, sessions: SessionServiceDep, limit: Limit = 20, offset: Offset = 0
) -> SessionList:
    """The caller's live sessions, newest first, one page at a time (`total`
    counts them all). Needs the `sessions:read` scope."""
    records, total = await sessions.list(owner=principal, limit=limit, offset=offset)
    return SessionList(
        items=[_response(record) for record in records], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{session_id}",
    response_model=SessionResponse,
    responses=problems(401, 403, docs={404: SESSION_NOT_FOUND}),
    summary="Read a session",
)
async def get_session(
    session_id: str, principal: SessionsReadDep, sessions: SessionServiceDep
) -> SessionResponse:
    """One of the caller's sessions: its agent, timestamps and message count. Reading it
    refreshes its expiry. Another caller's session, or a malformed id, is 404
    `session_not_found` exactly like a missing one. Needs the `sessions:read` scope."""
    return _response(await sessions.get_owned(owner=principal, session_id=session_id))


@router.get(
    "/{session_id}/messages",
    response_model=MessageList,
    responses=problems(401, 403, 422, docs={404: SESSION_NOT_FOUND}),
    summary="Read a session's history, oldest first",
)
async def list_messages(
    session_id: str,
    principal: SessionsReadDep,
    sessions: SessionServiceDep,
    limit: Limit = 20,
    offset: Offset = 0,
) -> MessageList:
    """The kept user and assistant messages of one of the caller's sessions, oldest first,
    one page at a time. Needs the `sessions:read` scope."""
    record, items = await sessions.messages(
        owner=principal, session_id=session_id, limit=limit, offset=offset
    )
    return MessageList(items=items, total=record.message_count, limit=limit, offset=offset)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(401, 403, docs={404: SESSION_NOT_FOUND}),
    summary="Delete a session and its history",
)
async def delete_session(
    session_id: str, principal: SessionsWriteDep, sessions: SessionServiceDep
) -> Response:
    """Deletes one of the caller's sessions and its history: 204, then 404
    `session_not_found` for it from then on (a second delete included). Needs the
    `sessions:write` scope."""
    await sessions.delete(owner=principal, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

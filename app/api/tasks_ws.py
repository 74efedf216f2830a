"""WS /v1/tasks/{id}/ws: follow a task's events and control it over one socket.

Server -> every event since the start (or after ?after=N, 1 to 18 ASCII digits: anything else
is refused with 400 invalid_last_event_id), then live ones; the socket closes
(1000) after the task's final event. Client -> {"type": "input", "request_id", "value"},
{"type": "cancel"}, {"type": "pause"}, {"type": "resume"} (these need tasks:write).
Replies to client messages: {"type": "ack", "action"} or {"type": "rejected", "code", "message"}.
Handshake, credentials, shutdown frame and close codes: app/api/ws_transport.py.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, WebSocket

from app.agents.followers import item_json
from app.api.deps import services_of
from app.api.sse import InvalidEventId, parse_event_id
from app.api.tasks import TASK_ID
from app.api.ws_transport import (
    POLICY_VIOLATION,
    authorize_socket,
    receive_frame,
    refuse_handshake,
    send_json,
    serve_socket,
)
from app.core.errors import AppError
from app.security.principals import Principal
from app.security.scopes import Scope
from app.tasks.service import TaskService

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.websocket("/{task_id}/ws")
async def task_socket(websocket: WebSocket, task_id: str, after: str | None = None) -> None:
    principal = await authorize_socket(websocket, required=frozenset({Scope.TASKS_READ}))
    if principal is None:
        return
    try:
        resume_after = parse_event_id(after, source="after") or 0
    except InvalidEventId as exc:
        await refuse_handshake(websocket, exc)
        return
    tasks = services_of(websocket).tasks
    try:
        if TASK_ID.fullmatch(task_id) is None:
            raise AppError("No task with this id.", status=404, code="task_not_found")
        await tasks.get(owner=principal, task_id=task_id)
    except AppError:
        await websocket.close(code=POLICY_VIOLATION, reason="task_not_found")
        return

    async def session() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(_read_client, websocket, tasks, principal, task_id)
            async for item in tasks.follow(task_id=task_id, after=resume_after):
                await websocket.send_text(item_json(item))
            group.cancel_scope.cancel()

    await serve_socket(websocket, session)


async def _rejected(websocket: WebSocket, code: str, message: str) -> None:
    await send_json(websocket, {"type": "rejected", "code": code, "message": message})


async def _read_client(
    websocket: WebSocket, tasks: TaskService, principal: Principal, task_id: str
) -> None:
    while True:
        message = await receive_frame(websocket)
        if message is None:
            await _rejected(websocket, "bad_message", "Frames must be JSON objects.")
            continue
        action = message.get("type")
        if not principal.has_scopes({Scope.TASKS_WRITE}):
            await _rejected(
                websocket, "insufficient_scope", "Controlling a task needs tasks:write."
            )
            continue
        try:
            if action == "input":
                await tasks.answer(
                    owner=principal,
                    task_id=task_id,
                    request_id=str(message.get("request_id", "")),
                    value=message.get("value"),
                )
            elif action == "cancel":
                await tasks.cancel(owner=principal, task_id=task_id)
            elif action in ("pause", "resume"):
                await tasks.control(owner=principal, task_id=task_id, action=action)
            else:
                await _rejected(websocket, "bad_message", "Send input, cancel, pause or resume.")
                continue
        except AppError as exc:
            await _rejected(websocket, exc.code, exc.detail)
            continue
        await send_json(websocket, {"type": "ack", "action": action})

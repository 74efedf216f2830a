"""WS /v1/tasks/{id}/ws: follow a task's events and control it over one socket.

Server -> every event since the start (or after ?after=N), then live ones; the socket closes
(1000) after the task's final event. Client -> {"type": "input", "request_id", "value"},
{"type": "cancel"}, {"type": "pause"}, {"type": "resume"} (these need tasks:write).
Replies to client messages: {"type": "ack", "action"} or {"type": "rejected", "code", "message"}.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.api.deps import websocket_principal
from app.api.tasks import TASK_ID
from app.core.errors import AppError
from app.security.principals import Principal
from app.tasks.service import TaskService

router = APIRouter(prefix="/tasks", tags=["tasks"])

POLICY_VIOLATION = 1008


@router.websocket("/{task_id}/ws")
async def task_socket(websocket: WebSocket, task_id: str, after: int = 0) -> None:
    principal = websocket_principal(websocket, frozenset({"tasks:read"}))
    tasks: TaskService = websocket.app.state.services.tasks
    if principal is None:
        await websocket.close(code=POLICY_VIOLATION, reason="unauthorized")
        return
    try:
        if TASK_ID.fullmatch(task_id) is None:
            raise AppError("No task with this id.", status=404, code="task_not_found")
        await tasks.get(owner=principal, task_id=task_id)
    except AppError:
        await websocket.close(code=POLICY_VIOLATION, reason="task_not_found")
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="bearer" if "bearer" in offered else None)
    disconnected = False
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_read_client, websocket, tasks, principal, task_id)
            async for item in tasks.follow(task_id=task_id, after=max(0, after)):
                text = json.dumps(item) if isinstance(item, dict) else item.model_dump_json()
                await websocket.send_text(text)
            group.cancel_scope.cancel()
    except* WebSocketDisconnect:
        disconnected = True
    if not disconnected and websocket.application_state == WebSocketState.CONNECTED:
        await websocket.close(code=1000)


async def _read_client(
    websocket: WebSocket, tasks: TaskService, principal: Principal, task_id: str
) -> None:
    while True:
        try:
            message: Any = json.loads(await websocket.receive_text())
        except ValueError:
            message = None
        if not isinstance(message, dict):
            await _reply(
                websocket,
                {
                    "type": "rejected",
                    "code": "bad_message",
                    "message": "Frames must be JSON objects.",
                },
            )
            continue
        action = message.get("type")
        if not principal.has_scopes(frozenset({"tasks:write"})):
            await _reply(
                websocket,
                {
                    "type": "rejected",
                    "code": "insufficient_scope",
                    "message": "Controlling a task needs tasks:write.",
                },
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
                await tasks.control(owner=principal, task_id=task_id, action=str(action))
            else:
                await _reply(
                    websocket,
                    {
                        "type": "rejected",
                        "code": "bad_message",
                        "message": "Send input, cancel, pause or resume.",
                    },
                )
                continue
        except AppError as exc:
            await _reply(websocket, {"type": "rejected", "code": exc.code, "message": exc.detail})
            continue
        await _reply(websocket, {"type": "ack", "action": action})


async def _reply(websocket: WebSocket, payload: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(payload))

"""/v1/stream/tasks/{task_id}: one URL that follows a task, the transport chosen by the request.

A WebSocket upgrade gets the task socket (the protocol of WS /v1/tasks/{task_id}/ws,
app/api/tasks_ws.py); any other GET gets the server-sent events of GET
/v1/tasks/{task_id}/events. Both are the existing handlers, called as they are, so the two
URLs of each transport cannot drift apart: same scopes, resume points and errors.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, WebSocket

from app.api.deps import SettingsDep, TaskServiceDep, TasksReadDep
from app.api.responses import TASK_EVENT_STREAM, TASK_NOT_FOUND, problems
from app.api.sse import EventStreamResponse
from app.api.tasks import EVENT_ID_BAD_REQUEST, ResumePoint, TaskId, task_events
from app.api.tasks_ws import task_socket

router = APIRouter(prefix="/stream", tags=["tasks"])


@router.get(
    "/tasks/{task_id}",
    responses={
        **problems(401, 403, 422, docs={400: EVENT_ID_BAD_REQUEST, 404: TASK_NOT_FOUND}),
        **TASK_EVENT_STREAM,
    },
    response_class=Response,
    summary="Follow a task's events (SSE, or WebSocket on upgrade)",
)
async def stream_task(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    settings: SettingsDep,
    after: ResumePoint = 0,
) -> EventStreamResponse:
    """One URL for both live transports. A request with `Upgrade: websocket` gets the task
    WebSocket, exactly as WS /v1/tasks/{task_id}/ws (events as JSON text frames, resume
    with `?after=`, control frames `input`, `cancel`, `pause`, `resume`, which need
    `tasks:write`). Any other GET (`Accept: text/event-stream`, or no Accept) gets the
    server-sent events of GET /v1/tasks/{task_id}/events: every event since the task was
    submitted, then live ones, ending after its final `run_completed` or `error`.

    Resumable: each frame's `id` is the task-wide sequence number; reconnect with
    `Last-Event-ID` or `?after=N` to get exactly the frames after it, from any replica.
    Another caller's task, or a malformed id, is 404 `task_not_found`. Needs the
    `tasks:read` scope.
    """
    return await task_events(
        task_id=task_id,
        principal=principal,
        tasks=tasks,
        settings=settings,
        after=after,
    )


@router.websocket("/tasks/{task_id}")
async def stream_task_socket(websocket: WebSocket, task_id: str, after: str | None = None) -> None:
    await task_socket(websocket, task_id, after)

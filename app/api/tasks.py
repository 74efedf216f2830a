"""Background tasks: submit, read, control, answer, and follow their events from any replica."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status

from app.api.deps import (
    RunServiceDep,
    SettingsDep,
    TaskServiceDep,
    TasksReadDep,
    TasksWriteDep,
)
from app.api.responses import (
    INPUT_UNPROCESSABLE,
    RETRY_AFTER,
    RUN_START_NOT_FOUND,
    TASK_CONFLICT,
    TASK_EVENT_STREAM,
    TASK_INPUT_NOT_FOUND,
    TASK_NOT_FOUND,
    TASK_SUBMIT_UNPROCESSABLE,
    ProblemDoc,
    problems,
)
from app.api.run_requests import build_run_request
from app.api.schemas.tasks import (
    EventList,
    TaskControl,
    TaskCreate,
    TaskInfo,
    TaskInput,
    TaskList,
    TaskPending,
    TaskResultResponse,
    TaskSubmitted,
)
from app.api.sse import EventStreamResponse, follow_frames, parse_event_id
from app.core.errors import NotFound
from app.llm.types import Usage
from app.store.run_records import RunRecord, RunStatus
from app.tasks.service import TaskService

router = APIRouter(prefix="/tasks", tags=["tasks"])

TASK_ID = re.compile(r"[0-9a-f]{32}")
STEP_TYPES = frozenset({"step"})
TOOL_TYPES = frozenset({"tool_call", "tool_result"})
PLAN_TYPES = frozenset({"plan"})


async def _task_id(task_id: str) -> str:
    # Opaque ids: a malformed one is just "not found", like a wrong one.
    if TASK_ID.fullmatch(task_id) is None:
        raise NotFound("No task with this id.", code="task_not_found")
    return task_id


TaskId = Annotated[str, Depends(_task_id)]


RESULT_PENDING = {
    "model": TaskPending,
    "description": "The task has not finished yet: poll again after `Retry-After` seconds.",
    "headers": RETRY_AFTER,
}


def _info(record: RunRecord) -> TaskInfo:
    return TaskInfo(task_id=record.id, **record.model_dump(exclude={"id"}))


@router.post(
    "",
    response_model=TaskSubmitted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, docs={404: RUN_START_NOT_FOUND, 422: TASK_SUBMIT_UNPROCESSABLE}),
    summary="Submit a background task",
)
async def submit_task(
    body: TaskCreate,
    response: Response,
    principal: TasksWriteDep,
    tasks: TaskServiceDep,
    runs: RunServiceDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> TaskSubmitted:
    """Queues a run of the agent for a worker (any replica, or `agent-service worker`) and
    answers 202 at once, with `Location` naming the task. Follow it with GET .../events
    (SSE, resumable) or the WebSocket, poll GET .../result, and answer `input_required`
    with POST .../input: agents that ask for human input (`approval`) work here.

    Idempotent with an `Idempotency-Key` header: the same key and body from the same caller
    within 24 h answer the first task again, with `Idempotent-Replayed: true`, and queue
    nothing; the same key with a different body is 422 `idempotency_key_mismatch`. Needs
    the `tasks:write` scope.
    """
    # Same validation as a foreground run (the input against the agent's, its length), before
    # anything is stored; the task keeps the input as sent and its worker validates it again.
    build_run_request(
        agent=body.agent,
        body=body,
        principal=principal,
        settings=settings,
        no_cache=False,
        agents=runs.agents,
    )
    record, created = await tasks.submit(
        owner=principal,
        agent=body.agent,
        input=body.input,
        session_id=body.session_id,
        max_steps=body.max_steps,
        params=dict(body.params),
        idempotency_key=idempotency_key,
    )
    response.headers["Location"] = f"{settings.API_PREFIX}/tasks/{record.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return TaskSubmitted(task_id=record.id, status=record.status, submitted_at=record.submitted_at)


@router.get(
    "",
    response_model=TaskList,
    responses=problems(401, 403, 422),
    summary="List own tasks, newest first",
)
async def list_tasks(
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    status_filter: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TaskList:
    """The caller's tasks, newest first, optionally only those in one `status`, one page
    at a time (`total` counts every match). Needs the `tasks:read` scope."""
    items, total = await tasks.list(
        owner=principal, status=status_filter, limit=limit, offset=offset
    )
    return TaskList(items=[_info(r) for r in items], total=total, limit=limit, offset=offset)


@router.get(
    "/{task_id}",
    response_model=TaskInfo,
    responses=problems(401, 403, docs={404: TASK_NOT_FOUND}),
    summary="Read a task's status",
)
async def get_task(task_id: TaskId, principal: TasksReadDep, tasks: TaskServiceDep) -> TaskInfo:
    """Status (`queued`, `running`, `pause_requested`, `paused`, `input_required`,
    `completed`, `failed`, `cancelled`), steps taken, attempts, timestamps, the pending
    input request if any, and the error of a failed task. Another caller's task, or a
    malformed id, is 404 `task_not_found`. Needs the `tasks:read` scope."""
    return _info(await tasks.get(owner=principal, task_id=task_id))


@router.get(
    "/{task_id}/result",
    response_model=TaskResultResponse,
    responses={**problems(401, 403, docs={404: TASK_NOT_FOUND}), 202: RESULT_PENDING},
    summary="Read a task's result",
)
async def get_result(
    task_id: TaskId, response: Response, principal: TasksReadDep, tasks: TaskServiceDep
) -> TaskResultResponse | Response:
    """200 with the outcome once the task has finished: the output, the reasoning trail,
    token usage, and `error_code`/`error_message` when it failed or was cancelled
    (`success` tells which). Before that, 202 with the status and `Retry-After: 1`. Needs
    the `tasks:read` scope."""
    record = await tasks.get(owner=principal, task_id=task_id)
    if not record.finished:
        return Response(
            content=json.dumps({"task_id": record.id, "status": record.status}),
            status_code=202,
            media_type="application/json",
            headers={"Retry-After": "1"},
        )
    result = record.result
    return TaskResultResponse(
        task_id=record.id,
        status=record.status,
        success=record.status == "completed",
        output=result.output if result else None,
        final_answer=result.output if result else None,  # deprecated name, same value
        reasoning=result.reasoning if result else [],
        usage=result.usage if result else Usage(),
        cached=result.cached if result else False,
        execution_time=result.execution_time if result else 0.0,
        error_code=record.error_code,
        error_message=record.error_message,
    )


@router.delete(
    "/{task_id}",
    response_model=TaskInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, docs={404: TASK_NOT_FOUND}),
    summary="Cancel a task",
)
async def cancel_task(task_id: TaskId, principal: TasksWriteDep, tasks: TaskServiceDep) -> TaskInfo:
    """A queued task never starts; a running one stops within a second, ending its event
    stream with an `error` event `cancelled`. Idempotent: cancelling a finished task
    answers its record unchanged. 202 with the record as it is now. Needs the
    `tasks:write` scope."""
    return _info(await tasks.cancel(owner=principal, task_id=task_id))


@router.post(
    "/{task_id}/control",
    response_model=TaskInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, 422, docs={404: TASK_NOT_FOUND, 409: TASK_CONFLICT}),
    summary="Pause, resume or stop a task",
)
async def control_task(
    task_id: TaskId, body: TaskControl, principal: TasksWriteDep, tasks: TaskServiceDep
) -> TaskInfo:
    """`pause` holds a running task at its next step, `resume` lets it go on, `stop` is
    the same as DELETE (cancel). A finished task is 409 `task_finished`; a queued one
    cannot be paused (409 `task_not_running`). 202 with the record as it is now. Needs the
    `tasks:write` scope."""
    return _info(await tasks.control(owner=principal, task_id=task_id, action=body.action))


@router.post(
    "/{task_id}/input",
    response_model=TaskInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(
        401,
        403,
        docs={404: TASK_INPUT_NOT_FOUND, 409: TASK_CONFLICT, 422: INPUT_UNPROCESSABLE},
    ),
    summary="Answer a task's input_required request",
)
async def answer_task(
    task_id: TaskId, body: TaskInput, principal: TasksWriteDep, tasks: TaskServiceDep
) -> TaskInfo:
    """Answers the pending `input_required` request of a task in `input_required` (its
    `request_id` is in the event and in the task's `pending_input`). `confirm` takes
    true/false, `choice` one of the offered choices, `text` a string. The task goes on
    with the worker holding it. Needs the `tasks:write` scope."""
    return _info(
        await tasks.answer(
            owner=principal, task_id=task_id, request_id=body.request_id, value=body.value
        )
    )


async def _typed_events(
    tasks: TaskService,
    principal: Any,
    task_id: str,
    types: frozenset[str],
    limit: int,
    offset: int,
) -> EventList:
    events = await tasks.events_of_types(
        owner=principal, task_id=task_id, types=types, limit=limit, offset=offset
    )
    return EventList(items=[e.model_dump(mode="json") for e in events], total=len(events))


@router.get(
    "/{task_id}/steps",
    response_model=EventList,
    responses=problems(401, 403, 422, docs={404: TASK_NOT_FOUND}),
    summary="List a task's steps",
)
async def task_steps(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EventList:
    """The `step` events of the task so far (number, duration, success), oldest first, one
    page at a time. Needs the `tasks:read` scope."""
    return await _typed_events(tasks, principal, task_id, STEP_TYPES, limit, offset)


@router.get(
    "/{task_id}/tools",
    response_model=EventList,
    responses=problems(401, 403, 422, docs={404: TASK_NOT_FOUND}),
    summary="List a task's tool calls and results",
)
async def task_tools(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """The `tool_call` and `tool_result` events of the task so far, oldest first: which
    tool was called with which arguments, and what it answered. Needs the `tasks:read`
    scope."""
    return await _typed_events(tasks, principal, task_id, TOOL_TYPES, limit, 0)


@router.get(
    "/{task_id}/plan",
    response_model=EventList,
    responses=problems(401, 403, docs={404: TASK_NOT_FOUND}),
    summary="Read a task's plan",
)
async def task_plan(task_id: TaskId, principal: TasksReadDep, tasks: TaskServiceDep) -> EventList:
    """The `plan` events of the task (the steps the agent meant to take, and its
    reflection). Needs the `tasks:read` scope."""
    return await _typed_events(tasks, principal, task_id, PLAN_TYPES, 100, 0)


EVENT_ID_BAD_REQUEST = ProblemDoc(
    "`Last-Event-ID` or `after` is not an event id (1 to 18 ASCII digits).",
    (
        (
            "invalid_last_event_id",
            "Last-Event-ID must be an event id: 1 to 18 ASCII digits (the `id` of a frame).",
        ),
    ),
)


async def _resume_point(
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[
        str | None,
        Query(
            description="Resume after this event id (as Last-Event-ID; wins over it).",
            json_schema_extra={"pattern": "^[0-9]{1,18}$"},
        ),
    ] = None,
) -> int:
    """The seq to follow after: ``?after=`` wins over ``Last-Event-ID``; 0 = the start."""
    if after is not None:
        return parse_event_id(after, source="after") or 0
    return parse_event_id(last_event_id, source="Last-Event-ID") or 0


# Every resumable SSE route's resume point (tasks, runs, the one-URL stream).
ResumePoint = Annotated[int, Depends(_resume_point)]


@router.get(
    "/{task_id}/events",
    responses={
        **problems(401, 403, 422, docs={400: EVENT_ID_BAD_REQUEST, 404: TASK_NOT_FOUND}),
        **TASK_EVENT_STREAM,
    },
    response_class=Response,
    summary="Follow a task's events (SSE, resumable)",
)
async def task_events(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    settings: SettingsDep,
    after: ResumePoint = 0,
) -> EventStreamResponse:
    """Every event of the task since it was submitted, then live ones, as server-sent
    events, ending after its final `run_completed` or `error`. Many clients may follow one
    task; disconnecting never affects it.

    Resumable: each frame's `id` is the task-wide sequence number, so a reconnecting
    client sends `Last-Event-ID` (browsers' EventSource does it by itself) or `?after=N`
    and gets exactly the frames after it, from any replica (an id that is not 1 to 18 ASCII
    digits is 400 `invalid_last_event_id`). If those events are no longer
    kept, an `events_missed` frame with the task's record comes first. Needs the
    `tasks:read` scope.
    """
    await tasks.get(owner=principal, task_id=task_id)  # 404 before the stream starts
    return EventStreamResponse(
        follow_frames(tasks.follow_batches(task_id=task_id, after=after)),
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=0,  # resumable: tell the client to reconnect at once
        on_disconnect=lambda reason: None,  # following a task never changes it
    )

"""Background tasks: submit, read, control, answer, and follow their events from any replica."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.sse import format_sse_event

from app.api.deps import (
    RunServiceDep,
    SettingsDep,
    TaskServiceDep,
    TasksReadDep,
    TasksWriteDep,
)
from app.api.responses import problems
from app.api.run_requests import build_run_request
from app.api.schemas.tasks import (
    EventList,
    TaskControl,
    TaskCreate,
    TaskInfo,
    TaskInput,
    TaskList,
    TaskResultResponse,
    TaskSubmitted,
)
from app.api.sse import EventStreamResponse, encode_event
from app.core.errors import NotFound
from app.llm.types import Usage
from app.tasks.records import TaskRecord, TaskStatus
from app.tasks.service import EventsMissed, TaskService

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


def _info(record: TaskRecord) -> TaskInfo:
    return TaskInfo(task_id=record.id, **record.model_dump(exclude={"id"}))


@router.post(
    "",
    response_model=TaskSubmitted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, 404, 422),
    summary="Submit a background task (honours Idempotency-Key for 24 h)",
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
    # Same validation as a foreground run (input length, params).
    build_run_request(
        agent=body.agent, body=body, principal=principal, settings=settings, no_cache=False
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


@router.get("", response_model=TaskList, responses=problems(401, 403, 422))
async def list_tasks(
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    status_filter: Annotated[TaskStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TaskList:
    items, total = await tasks.list(
        owner=principal, status=status_filter, limit=limit, offset=offset
    )
    return TaskList(items=[_info(r) for r in items], total=total, limit=limit, offset=offset)


@router.get("/{task_id}", response_model=TaskInfo, responses=problems(401, 403, 404))
async def get_task(task_id: TaskId, principal: TasksReadDep, tasks: TaskServiceDep) -> TaskInfo:
    return _info(await tasks.get(owner=principal, task_id=task_id))


@router.get(
    "/{task_id}/result",
    response_model=TaskResultResponse,
    responses={**problems(401, 403, 404), 202: {"description": "Not finished; retry later"}},
)
async def get_result(
    task_id: TaskId, response: Response, principal: TasksReadDep, tasks: TaskServiceDep
) -> TaskResultResponse | Response:
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
    responses=problems(401, 403, 404),
    summary="Cancel (idempotent): a queued task never starts, a running one stops",
)
async def cancel_task(task_id: TaskId, principal: TasksWriteDep, tasks: TaskServiceDep) -> TaskInfo:
    return _info(await tasks.cancel(owner=principal, task_id=task_id))


@router.post(
    "/{task_id}/control",
    response_model=TaskInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, 404, 409, 422),
)
async def control_task(
    task_id: TaskId, body: TaskControl, principal: TasksWriteDep, tasks: TaskServiceDep
) -> TaskInfo:
    return _info(await tasks.control(owner=principal, task_id=task_id, action=body.action))


@router.post(
    "/{task_id}/input",
    response_model=TaskInfo,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, 404, 409, 422),
)
async def answer_task(
    task_id: TaskId, body: TaskInput, principal: TasksWriteDep, tasks: TaskServiceDep
) -> TaskInfo:
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


@router.get("/{task_id}/steps", response_model=EventList, responses=problems(401, 403, 404))
async def task_steps(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EventList:
    return await _typed_events(tasks, principal, task_id, STEP_TYPES, limit, offset)


@router.get("/{task_id}/tools", response_model=EventList, responses=problems(401, 403, 404))
async def task_tools(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    return await _typed_events(tasks, principal, task_id, TOOL_TYPES, limit, 0)


@router.get("/{task_id}/plan", response_model=EventList, responses=problems(401, 403, 404))
async def task_plan(task_id: TaskId, principal: TasksReadDep, tasks: TaskServiceDep) -> EventList:
    return await _typed_events(tasks, principal, task_id, PLAN_TYPES, 100, 0)


def _after(last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return 0


async def _frames(tasks: TaskService, task_id: str, after: int) -> AsyncIterator[bytes]:
    async for item in tasks.follow(task_id=task_id, after=after):
        if isinstance(item, EventsMissed):
            yield format_sse_event(data_str=item.model_dump_json(), event=item.type)
        else:
            yield encode_event(item)


@router.get(
    "/{task_id}/events",
    responses={
        **problems(401, 403, 404),
        200: {"description": "Server-sent events", "content": {"text/event-stream": {}}},
    },
    response_class=Response,
    summary="Every event since the start (or after Last-Event-ID), then live",
)
async def task_events(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> EventStreamResponse:
    await tasks.get(owner=principal, task_id=task_id)  # 404 before the stream starts
    return EventStreamResponse(
        _frames(tasks, task_id, _after(last_event_id, after)),
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=0,  # resumable: tell the client to reconnect at once
        on_disconnect=lambda reason: None,  # following a task never changes it
    )

"""Every run, foreground or background, from any replica: read its record, list the caller's,
follow its events (resumable), answer its input request, or cancel it."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.agents.control_bus import ControlRequest
from app.agents.sessions import SESSION_ID_PATTERN
from app.api.deps import AgentsRunDep, RunServiceDep, SettingsDep
from app.api.responses import (
    INPUT_UNPROCESSABLE,
    LIVE_RUN_NOT_FOUND,
    TASK_STREAM_EVENT,
    ProblemDoc,
    event_stream,
    problems,
)
from app.api.schemas.agents import Accepted, RunInputBody
from app.api.schemas.runs import RunInfo, RunList
from app.api.schemas.streams import TASK_STREAM_DESCRIPTION
from app.api.sse import EventStreamResponse, follow_frames
from app.api.tasks import EVENT_ID_BAD_REQUEST, ResumePoint
from app.core.errors import NotFound
from app.store.run_records import RunStatus

router = APIRouter(prefix="/runs", tags=["runs"])

RUN_ID = re.compile(r"[0-9a-f]{32}")
RUN_NOT_FOUND = ProblemDoc(
    "No run with this id, or it is someone else's.", (("run_not_found", "No run with this id."),)
)
RUN_FOLLOW_STREAM = event_stream(
    TASK_STREAM_EVENT,
    TASK_STREAM_DESCRIPTION.replace("task-wide", "run-wide").replace("the task", "the run"),
)


async def _run_id(run_id: str) -> str:
    # Opaque ids: a malformed one is just "not found", like a wrong one.
    if RUN_ID.fullmatch(run_id) is None:
        raise NotFound("No run with this id.", code="run_not_found")
    return run_id


RunId = Annotated[str, Depends(_run_id)]


@router.get(
    "",
    response_model=RunList,
    responses=problems(401, 403, 422),
    summary="List own runs, newest first",
)
async def list_runs(
    principal: AgentsRunDep,
    runs: RunServiceDep,
    session_id: Annotated[str | None, Query(pattern=SESSION_ID_PATTERN)] = None,
    status_filter: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunList:
    """The caller's runs (foreground runs and background tasks, `kind` tells which), newest
    first, optionally of one session and in one `status`, one page at a time (`total` counts
    every match; with a filter, among the newest 1,000 runs in Redis). Foreground runs are
    kept RUN_RETENTION_SECONDS, tasks TASK_RETENTION_SECONDS. Needs the `agents:run` scope."""
    items, total = await runs.list(
        owner=principal, session_id=session_id, status=status_filter, limit=limit, offset=offset
    )
    return RunList(items=[RunInfo.of(r) for r in items], total=total, limit=limit, offset=offset)


@router.get(
    "/{run_id}",
    response_model=RunInfo,
    responses=problems(401, 403, docs={404: RUN_NOT_FOUND}),
    summary="Read a run",
)
async def get_run(run_id: RunId, principal: AgentsRunDep, runs: RunServiceDep) -> RunInfo:
    """Status (`running`, `input_required`, `completed`, `failed`, `cancelled`; a task's
    own statuses too), agent, session, token usage, timings, the pending input request, the
    output or the error. Another caller's run, or a malformed id, is 404 `run_not_found`.
    A run whose process died is reported `failed` with `run_lost`. Needs `agents:run`."""
    return RunInfo.of(await runs.get(owner=principal, run_id=run_id))


@router.get(
    "/{run_id}/events",
    responses={
        **problems(401, 403, 422, docs={400: EVENT_ID_BAD_REQUEST, 404: RUN_NOT_FOUND}),
        **RUN_FOLLOW_STREAM,
    },
    response_class=Response,
    summary="Follow a run's events (SSE, resumable)",
)
async def run_events(
    run_id: RunId,
    principal: AgentsRunDep,
    runs: RunServiceDep,
    settings: SettingsDep,
    after: ResumePoint = 0,
) -> EventStreamResponse:
    """Every event of the run since it started, then live ones, as server-sent events,
    ending after its `run_completed` or `error`, from any replica and for any number of
    readers (all see the same events in the same order). Reading never affects the run.

    Resumable: each frame's `id` is the run-wide sequence number (strictly increasing), so a
    reconnecting client sends `Last-Event-ID` (EventSource does it by itself) or `?after=N`
    and gets exactly the frames after it. Events older than the log keeps
    (TASK_EVENTS_MAX per run) are announced by one `events_missed` frame. A reader far
    behind the run reads from the log, with runs of `token` events merged into one (text
    joined, the id of the last). Needs the `agents:run` scope.
    """
    await runs.get(owner=principal, run_id=run_id)  # 404 before the stream starts
    return EventStreamResponse(
        follow_frames(runs.follow_batches(run_id, after=after)),
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=0,  # resumable: tell the client to reconnect at once
        on_disconnect=lambda reason: None,  # following a run never changes it
    )


ERRORS = problems(401, 403, docs={404: LIVE_RUN_NOT_FOUND})
INPUT_ERRORS = problems(401, 403, docs={404: LIVE_RUN_NOT_FOUND, 422: INPUT_UNPROCESSABLE})


@router.post(
    "/{run_id}/input",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=INPUT_ERRORS,
    summary="Answer a run's input_required request",
)
async def answer_input(
    run_id: str, body: RunInputBody, principal: AgentsRunDep, runs: RunServiceDep
) -> Accepted:
    """Answers the `input_required` event of a live run started with the stream route (its
    `X-Run-ID` header and the event's `request_id`). Works from any replica: the answer
    reaches the one holding the run. `confirm` takes true/false, `choice` one of the
    event's `choices`, `text` a string. 202 once the run has taken the answer; it then
    goes on in its own stream. Needs the `agents:run` scope and must come from the run's
    own caller: another caller's run is 404 `run_not_found`.
    """
    await runs.control(
        ControlRequest(
            run_id=run_id,
            principal_id=principal.id,
            action="input",
            request_id=body.request_id,
            value=body.value,
        )
    )
    return Accepted(run_id=run_id)


@router.post(
    "/{run_id}/cancel",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERRORS,
    summary="Cancel a live run",
)
async def cancel_run(run_id: str, principal: AgentsRunDep, runs: RunServiceDep) -> Accepted:
    """Cancels a live foreground run from any replica: its agent and upstream LLM call stop
    within a second, and its stream ends with an `error` event `cancelled`. A run that has
    already ended, or another caller's, is 404 `run_not_found`. Needs the `agents:run`
    scope. Background tasks are cancelled with DELETE /v1/tasks/{task_id}."""
    await runs.control(ControlRequest(run_id=run_id, principal_id=principal.id, action="cancel"))
    return Accepted(run_id=run_id)

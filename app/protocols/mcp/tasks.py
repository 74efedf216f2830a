"""MCP Tasks (protocol 2025-11-25, experimental in the SDK) as our background tasks: a
task-augmented tools/call of an agent is POST /v1/tasks (TaskService.submit), and tasks/get,
tasks/result, tasks/list and tasks/cancel read and control that task. The MCP task id is our
task id, owned by the principal, not the MCP session: any replica answers, in stateless mode
too, and GET /v1/tasks/{id} shows the same task.

tasks/result waits for the end, streaming progress; a question the task asks
(``input_required``) is put to the client as an elicitation on that request (a stateful
session whose client has elicitation), else answered over REST (POST /v1/tasks/{id}/input).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from mcp import types
from mcp.server.session import ServerSession

from app.agents.events import InputRequired, RunCompleted
from app.api.schemas.agents import RunBody
from app.protocols.mcp.caller import Caller
from app.protocols.mcp.elicitation import ask_client
from app.protocols.mcp.progress import ProgressReporter
from app.protocols.mcp.runs import (
    completed_result,
    ending_result,
    failed_result,
    follow_to_end,
    run_body,
    run_request,
)
from app.store.run_records import RunRecord, RunStatus

POLL_INTERVAL_MS = 1000
SETTLE_SECONDS = 5.0  # the most tasks/result waits for the record after the final event
SETTLE_POLL_SECONDS = 0.05
LIST_PAGE = 50
RELATED_TASK = "io.modelcontextprotocol/related-task"

_STATUS: dict[RunStatus, types.TaskStatus] = {
    "queued": "working",
    "running": "working",
    "pause_requested": "working",
    "paused": "working",
    "input_required": "input_required",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "incomplete": "failed",  # stopped at a token budget (MCP has no such status)
}


def task_of(record: RunRecord, *, ttl_ms: int) -> types.Task:
    message: str | None = None
    if record.pending_input is not None and record.status == "input_required":
        message = record.pending_input.prompt
    elif record.error_message:
        message = f"{record.error_message} ({record.error_code})"
    elif record.status in ("paused", "pause_requested", "queued"):
        message = record.status
    return types.Task(
        taskId=record.id,
        status=_STATUS[record.status],
        statusMessage=message,
        createdAt=record.submitted_at,
        lastUpdatedAt=record.updated_at,
        ttl=ttl_ms,
        pollInterval=POLL_INTERVAL_MS,
    )


def _ttl_ms(caller: Caller) -> int:
    return caller.settings.TASK_RETENTION_SECONDS * 1000


async def submit(
    caller: Caller, agent: str, arguments: Mapping[str, Any]
) -> types.CreateTaskResult:
    run_request(caller, agent, arguments)  # the same checks as a foreground run, first
    body = run_body(arguments, RunBody)
    record, _ = await caller.services.tasks.submit(
        owner=caller.principal,
        agent=agent,
        input=body.input,
        session_id=None,
        max_steps=None,
        params={},
        idempotency_key=None,
    )
    return types.CreateTaskResult(task=task_of(record, ttl_ms=_ttl_ms(caller)))


async def get(caller: Caller, task_id: str) -> types.GetTaskResult:
    record = await caller.services.tasks.get(owner=caller.principal, task_id=task_id)
    return types.GetTaskResult(**task_of(record, ttl_ms=_ttl_ms(caller)).model_dump())


async def cancel(caller: Caller, task_id: str) -> types.CancelTaskResult:
    tasks = caller.services.tasks
    record = await tasks.get(owner=caller.principal, task_id=task_id)
    if not record.finished:
        record = await tasks.cancel(owner=caller.principal, task_id=task_id)
    return types.CancelTaskResult(**task_of(record, ttl_ms=_ttl_ms(caller)).model_dump())


async def page(caller: Caller, cursor: str | None) -> types.ListTasksResult:
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    records, total = await caller.services.tasks.list(
        owner=caller.principal, status=None, limit=LIST_PAGE, offset=offset
    )
    following = offset + len(records)
    return types.ListTasksResult(
        tasks=[task_of(record, ttl_ms=_ttl_ms(caller)) for record in records],
        nextCursor=str(following) if following < total else None,
    )


async def result(
    caller: Caller,
    task_id: str,
    *,
    session: ServerSession,
    request_id: types.RequestId,
    progress_token: types.ProgressToken | None,
) -> types.CallToolResult:
    tasks = caller.services.tasks
    owner = caller.principal
    await tasks.get(owner=owner, task_id=task_id)  # 404 before anything streams

    async def answer(event: InputRequired) -> None:
        if not await _waits_on(caller, task_id, event):
            return
        value = await ask_client(session, event, related_request_id=request_id)
        await tasks.answer(owner=owner, task_id=task_id, request_id=event.request_id, value=value)

    ending = await follow_to_end(
        tasks.follow_batches(task_id=task_id, after=0),
        progress=ProgressReporter(session, progress_token, request_id),
        on_question=answer,
    )
    record = await _settled(caller, task_id)
    outcome = ending_result(ending, task_id) if ending is not None else result_of(record)
    return _with_task(outcome, task_id)


async def _waits_on(caller: Caller, task_id: str, event: InputRequired) -> bool:
    """Whether the task waits on this question now. The log is replayed from the start, so
    a question may have been answered long ago (the log goes on after it); and the worker
    records an open question just after logging it, so a live one may not be on the record
    yet: wait for it, a little."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        record = await caller.services.tasks.get(owner=caller.principal, task_id=task_id)
        pending = record.pending_input
        if pending is not None:
            return pending.request_id == event.request_id
        if record.finished or time.monotonic() > deadline:
            return False
        if await caller.services.runs.store.read_events(task_id, after=event.seq, limit=1):
            return False  # the run went on: answered
        await asyncio.sleep(SETTLE_POLL_SECONDS)


async def _settled(caller: Caller, task_id: str) -> RunRecord:
    """The task's record once it says how the task ended. The worker writes that just after
    the final event, so a client that reads tasks/get after this result sees the end too."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        record = await caller.services.tasks.get(owner=caller.principal, task_id=task_id)
        if record.finished or time.monotonic() > deadline:
            return record
        await asyncio.sleep(SETTLE_POLL_SECONDS)


def result_of(record: RunRecord) -> types.CallToolResult:
    if record.status == "completed" and record.result is not None:
        ended = RunCompleted(
            output=record.result.output,
            usage=record.result.usage,
            cached=record.result.cached,
            execution_time=record.result.execution_time,
        )
        return completed_result(ended, record.id)
    return failed_result(
        record.error_code or record.status,
        record.error_message or "The task did not complete.",
        record.id,
    )


def _with_task(outcome: types.CallToolResult, task_id: str) -> types.CallToolResult:
    return outcome.model_copy(update={"meta": {RELATED_TASK: {"taskId": task_id}}})

"""GET /v1/tasks/{task_id}/memory: a task's working memory, for debugging an agent."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SessionServiceDep, SettingsDep, TaskServiceDep, TasksReadDep
from app.api.responses import ProblemDoc, problems
from app.api.schemas.memory import MemorySummaryInfo, TaskMemory
from app.api.tasks import TaskId
from app.tasks.memory_view import task_memory

router = APIRouter(prefix="/tasks", tags=["tasks"])

MEMORY_NOT_FOUND = ProblemDoc(
    "No task with this id, or the caller neither owns it nor has the `admin` scope.",
    (("task_not_found", "No task with this id."),),
)


@router.get(
    "/{task_id}/memory",
    response_model=TaskMemory,
    responses=problems(401, 403, docs={404: MEMORY_NOT_FOUND}),
    summary="Inspect a task's working memory (debugging aid)",
)
async def get_task_memory(
    task_id: TaskId,
    principal: TasksReadDep,
    tasks: TaskServiceDep,
    sessions: SessionServiceDep,
    settings: SettingsDep,
) -> TaskMemory:
    """A debugging aid: the messages the agent works with, rebuilt from the session history
    the run was given, the task's input, and the run's own messages, tool calls and tool
    results (from its event log), oldest first; and the last `memory_summary` the agent
    emitted when it compacted that memory. `truncated` says older messages are missing.
    Not a stable interface for building on: read the events for that.

    Only the task's owner, or a principal with the `admin` scope, may look; anyone else
    gets 404 `task_not_found`, as for a task that does not exist. Needs the `tasks:read`
    scope.
    """
    snapshot = await task_memory(
        store=tasks.backend.store,
        sessions=sessions,
        viewer=principal,
        task_id=task_id,
        history_limit=settings.SESSION_MAX_MESSAGES,
    )
    summary = snapshot.summary
    return TaskMemory(
        task_id=snapshot.task_id,
        session_id=snapshot.session_id,
        messages=snapshot.messages,
        summary=None
        if summary is None
        else MemorySummaryInfo(
            summary=summary.summary,
            messages_summarized=summary.messages_summarized,
            seq=summary.seq,
        ),
        truncated=snapshot.truncated,
    )

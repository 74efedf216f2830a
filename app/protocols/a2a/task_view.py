"""Our task records as A2A Tasks: the status, the agent's question, the output artifact and a
short history, built with the SDK's types.

A2A task = our background task (same id); context = our session; the record's status maps
onto A2A's states (``STATES``); the run's output is the artifact ``response``; a question
(``input_required``) is the status message, its text the prompt and a data part saying how to
answer (kind, choices, request id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from a2a.helpers import new_data_part
from a2a.types import Artifact, Message, Part, Role, Task, TaskState, TaskStatus

from app.store.run_records import PendingInputInfo, RunRecord, RunStatus

RESPONSE_ARTIFACT = "response"

STATES: dict[RunStatus, TaskState] = {
    "queued": TaskState.TASK_STATE_SUBMITTED,
    "running": TaskState.TASK_STATE_WORKING,
    "pause_requested": TaskState.TASK_STATE_WORKING,
    "paused": TaskState.TASK_STATE_WORKING,
    "input_required": TaskState.TASK_STATE_INPUT_REQUIRED,
    "completed": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
    "incomplete": TaskState.TASK_STATE_FAILED,  # stopped at a token budget (A2A has no such state)
}
TERMINAL_STATES = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
# ListTasks' status filter, as the one status of ours each state stands for.
STATUS_FILTER: dict[TaskState, RunStatus] = {
    TaskState.TASK_STATE_SUBMITTED: "queued",
    TaskState.TASK_STATE_WORKING: "running",
    TaskState.TASK_STATE_INPUT_REQUIRED: "input_required",
    TaskState.TASK_STATE_COMPLETED: "completed",
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_CANCELED: "cancelled",
}


@dataclass(frozen=True, slots=True)
class TaskLinks:
    """Where the same task lives in our native API (absolute URLs, for the task's metadata)."""

    base_url: str  # PUBLIC_URL, or the request's own base URL
    api_prefix: str

    def of(self, task_id: str) -> dict[str, str]:
        root = f"{self.base_url}{self.api_prefix}/tasks/{task_id}"
        return {"task": root, "events": f"{root}/events"}


def text_part(text: str) -> Part:
    return Part(text=text, media_type="text/plain")


def data_part(data: dict[str, Any]) -> Part:
    return new_data_part(data, media_type="application/json")


def agent_message(task_id: str, context_id: str, message_id: str, parts: list[Part]) -> Message:
    return Message(
        message_id=message_id,
        task_id=task_id,
        context_id=context_id,
        role=Role.ROLE_AGENT,
        parts=parts,
    )


def question_message(task_id: str, context_id: str, pending: PendingInputInfo) -> Message:
    """The agent's question: its prompt, and how to answer it (a data part)."""
    how: dict[str, Any] = {"request_id": pending.request_id, "kind": pending.kind}
    if pending.choices:
        how["choices"] = list(pending.choices)
    return agent_message(
        task_id,
        context_id,
        f"{task_id}-{pending.request_id}",
        [text_part(pending.prompt), data_part({"input_required": how})],
    )


def failure_message(task_id: str, context_id: str, code: str, detail: str) -> Message:
    message = agent_message(task_id, context_id, f"{task_id}-error", [text_part(detail)])
    message.metadata.update({"code": code})
    return message


def response_artifact(text: str) -> Artifact:
    return Artifact(artifact_id=RESPONSE_ARTIFACT, name=RESPONSE_ARTIFACT, parts=[text_part(text)])


def input_message(record: RunRecord) -> Message:
    """The message the task started from, as the user sent it."""
    context_id = record.session_id or ""
    part = text_part(record.input) if isinstance(record.input, str) else data_part(record.input)
    return Message(
        message_id=f"{record.id}-input",
        task_id=record.id,
        context_id=context_id,
        role=Role.ROLE_USER,
        parts=[part],
    )


def record_status(record: RunRecord) -> TaskStatus:
    context_id = record.session_id or ""
    status = TaskStatus(state=STATES[record.status], timestamp=record.updated_at)
    if record.status == "input_required" and record.pending_input is not None:
        status.message.CopyFrom(question_message(record.id, context_id, record.pending_input))
    elif record.status in ("failed", "cancelled", "incomplete"):
        detail = record.error_message or record.status
        status.message.CopyFrom(
            failure_message(record.id, context_id, record.error_code or record.status, detail)
        )
    return status


def task_of(
    record: RunRecord,
    links: TaskLinks,
    *,
    status: TaskStatus | None = None,
    artifacts: list[Artifact] | None = None,
    history_length: int | None = None,
) -> Task:
    """The record as a Task; ``status`` and ``artifacts`` when the caller saw newer ones in the
    task's events than the record holds yet."""
    if artifacts is None:
        output = record.result.output if record.result is not None else None
        artifacts = [response_artifact(output)] if output else []
    history = [input_message(record)]
    if history_length is not None:
        history = history[len(history) - history_length :] if history_length > 0 else []
    return Task(
        id=record.id,
        context_id=record.session_id or "",
        status=status if status is not None else record_status(record),
        artifacts=artifacts,
        history=history,
        metadata={"agent": record.agent, "links": links.of(record.id)},
    )

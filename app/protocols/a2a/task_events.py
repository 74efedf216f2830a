"""A task's events (our run log) as A2A stream events.

One ``TaskEvents`` per stream reads the task's events in order and keeps what A2A calls the
task's state: the status (working, input-required, a final one) and the output so far. It
says what changed as A2A events: a status update per change of state, the output as
chunks of the ``response`` artifact while tokens arrive (streams only; webhooks get the final
artifact alone), and at the end the whole output as that artifact, replacing the chunks. The
same object then gives the Task as it stands (``task``), the first item of every stream.
"""

from __future__ import annotations

from typing import Literal

from a2a.types import (
    Message,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from app.agents.events import ErrorEvent, InputRequired, MessageEvent, RunCompleted
from app.agents.feed import LoggedEvent
from app.agents.followers import EventsMissed, FollowItem
from app.core.clock import utcnow
from app.protocols.a2a.task_view import (
    TERMINAL_STATES,
    TaskLinks,
    failure_message,
    question_message,
    response_artifact,
    task_of,
)
from app.store.run_records import PendingInputInfo, RunRecord

# Events that say nothing A2A has a place for (tool calls, steps, plans, logs) are left out:
# the native event stream (the task's metadata links to it) has them all.
_WORKING_TYPES = frozenset({"run_started", "token", "message", "tool_call", "tool_result", "step"})

Stop = Literal["terminal", "input_required"]
Update = TaskStatusUpdateEvent | TaskArtifactUpdateEvent


class TaskEvents:
    def __init__(self, record: RunRecord, links: TaskLinks, *, chunks: bool) -> None:
        self._record = record
        self._links = links
        self._chunks = chunks  # stream the output as it is made (SSE), or only at the end
        self.task_id = record.id
        self.context_id = record.session_id or ""
        # Every stream reads the log from its start: the events, not the record, decide.
        self.status = TaskStatus(state=TaskState.TASK_STATE_SUBMITTED)
        self.last_seq = 0
        self.stopped: Stop | None = None
        self.question: str | None = None  # the request id of the open question, if any
        self._text: list[str] = []  # tokens so far
        self._message: str | None = None  # the last assistant message: the output if any
        self._output: str | None = None  # the final output, once completed
        self._chunked = False  # a chunk of the artifact has been sent in this stream

    def answered(self) -> None:
        """The client just answered the question the events ended on: working again."""
        if self.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            self._set(TaskState.TASK_STATE_WORKING)
            self.stopped = None

    def feed(self, item: FollowItem) -> list[Update]:
        """The stream responses this event makes (none for most)."""
        if isinstance(item, EventsMissed):  # the log no longer has them: carry on after
            self.last_seq = max(self.last_seq, item.to_seq)
            return []
        self.last_seq = item.seq
        return self._event(item)

    def _event(self, item: LoggedEvent) -> list[Update]:
        kind = item.type
        if kind in _WORKING_TYPES:
            out = self._working()
            if kind == "token":
                out += self._token(item)
            elif kind == "message":
                event = item.event
                if isinstance(event, MessageEvent) and event.role == "assistant":
                    self._message = event.content
            return out
        event = item.event
        if isinstance(event, InputRequired):
            pending = PendingInputInfo(
                request_id=event.request_id,
                kind=event.kind,
                prompt=event.prompt,
                choices=event.choices,
            )
            self.stopped = "input_required"
            self.question = event.request_id
            message = question_message(self.task_id, self.context_id, pending)
            return [self._set(TaskState.TASK_STATE_INPUT_REQUIRED, message=message)]
        if isinstance(event, RunCompleted):
            self._output = event.output
            self.stopped = "terminal"
            final = TaskArtifactUpdateEvent(
                task_id=self.task_id,
                context_id=self.context_id,
                artifact=response_artifact(event.output),
                append=False,  # the whole output: replaces the chunks streamed so far
                last_chunk=True,
            )
            return [final, self._set(TaskState.TASK_STATE_COMPLETED)]
        if isinstance(event, ErrorEvent):
            self.stopped = "terminal"
            state = (
                TaskState.TASK_STATE_CANCELED
                if event.code == "cancelled"
                else TaskState.TASK_STATE_FAILED
            )
            message = failure_message(self.task_id, self.context_id, event.code, event.message)
            return [self._set(state, message=message)]
        return []

    def _working(self) -> list[Update]:
        if self.status.state in (
            TaskState.TASK_STATE_SUBMITTED,
            TaskState.TASK_STATE_INPUT_REQUIRED,
        ):
            self.stopped = None
            return [self._set(TaskState.TASK_STATE_WORKING)]
        return []

    def _token(self, item: LoggedEvent) -> list[Update]:
        event = item.event
        text = getattr(event, "text", "")
        if not text:
            return []
        self._text.append(text)
        if not self._chunks:
            return []
        chunk = TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            artifact=response_artifact(text),
            append=self._chunked,
            last_chunk=False,
        )
        self._chunked = True
        return [chunk]

    def _set(self, state: TaskState, *, message: Message | None = None) -> TaskStatusUpdateEvent:
        status = TaskStatus(state=state, timestamp=utcnow())
        if message is not None:
            status.message.CopyFrom(message)
        self.status = status
        return TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=status
        )

    @property
    def finished(self) -> bool:
        return self.status.state in TERMINAL_STATES

    def task(self, *, history_length: int | None = None) -> Task:
        """The Task as these events leave it (the record may not have caught up yet)."""
        output = self._output
        if output is None:
            output = self._message or "".join(self._text)
        artifacts = [response_artifact(output)] if output else []
        return task_of(
            self._record,
            self._links,
            status=self.status,
            artifacts=artifacts,
            history_length=history_length,
        )

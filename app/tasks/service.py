"""TaskService: what the task routes do, without HTTP. Keyword-only, owner-checked."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel

from app.agents.control import coerce_answer
from app.agents.errors import InvalidInput
from app.agents.events import EVENT_ADAPTER, ErrorEvent, Event
from app.agents.events import TERMINAL_TYPES as TERMINAL_EVENT_TYPES
from app.agents.registry import AgentRegistry
from app.agents.sessions import SessionService
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.observability.metrics import CONCURRENCY_REJECTIONS
from app.security.principals import Principal
from app.store.concurrency import TooManyConcurrentRuns
from app.tasks import metrics
from app.tasks.backend import IdempotencyKey, StoredEvent, TaskBackend
from app.tasks.idempotency import task_fingerprint
from app.tasks.records import (
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    StatusSet,
    TaskAnswer,
    TaskRecord,
    TaskStatus,
)

ControlAction = Literal["pause", "resume", "stop"]
CANCELLABLE_NOW: StatusSet = frozenset({"queued"})
NOT_FINISHED = CANCELLABLE_NOW | LIVE_STATUSES
# A pause asked for while the agent waits for an answer (or is already pausing) takes
# effect at the next checkpoint; the status keeps saying what the run does until then.
PAUSE_LATER: StatusSet = frozenset({"input_required", "pause_requested", "paused"})
TASK_SLOT_RETRY_AFTER_SECONDS = 5  # a hint: tasks take longer than foreground runs


class EventsMissed(BaseModel):
    """Told to a follower whose resume point is older than the retained events."""

    type: Literal["events_missed"] = "events_missed"
    from_seq: int
    to_seq: int
    task: TaskRecord | None  # the record now, since the missed events cannot be replayed


FollowItem = Event | EventsMissed


def _not_found() -> NotFound:
    return NotFound("No task with this id.", code="task_not_found")


def decode_event(stored: StoredEvent) -> Event:
    """The stored JSON with ``seq`` replaced by the task-wide sequence number."""
    event = EVENT_ADAPTER.validate_json(stored.json)
    return event.model_copy(update={"seq": stored.seq})


class TaskService:
    def __init__(
        self,
        *,
        backend: TaskBackend,
        agents: AgentRegistry,
        sessions: SessionService,
        max_active_per_principal: int = 0,
    ) -> None:
        self.backend = backend
        self._agents = agents
        self._sessions = sessions
        self._max_active = max_active_per_principal  # MAX_ACTIVE_TASKS_PER_PRINCIPAL, 0 = none

    async def submit(
        self,
        *,
        owner: Principal,
        agent: str,
        input: str,
        session_id: str | None,
        max_steps: int | None,
        params: dict[str, Any],
        idempotency_key: str | None,
    ) -> tuple[TaskRecord, bool]:
        self._agents.require(agent)
        if session_id is not None:
            await self._sessions.get_owned(owner=owner, session_id=session_id)
        record = TaskRecord(
            id=uuid.uuid4().hex,
            owner=owner.id,
            agent=agent,
            input=input,
            session_id=session_id,
            max_steps=max_steps,
            params=params,
        )
        idempotency = None
        if idempotency_key is not None:
            idempotency = IdempotencyKey(idempotency_key, task_fingerprint(record))
        submission = await self.backend.submit(
            record, idempotency=idempotency, max_active=self._max_active
        )
        if submission.outcome == "over_cap":
            CONCURRENCY_REJECTIONS.labels(kind="tasks").inc()
            raise TooManyConcurrentRuns(
                f"You already have {self._max_active} tasks queued or running, the most one "
                "principal may have; submit more when some have finished (or cancel some).",
                limit=self._max_active,
                retry_after=TASK_SLOT_RETRY_AFTER_SECONDS,
            )
        if submission.outcome == "key_reused":
            raise Unprocessable(
                "This Idempotency-Key was already used with a different request body; "
                "send a new key for a new task.",
                code="idempotency_key_mismatch",
            )
        created = submission.outcome == "created"
        if created:
            metrics.TASKS_SUBMITTED.inc()
        return submission.record, created

    async def get(self, *, owner: Principal, task_id: str) -> TaskRecord:
        record = await self.backend.get(task_id)
        if record is None or record.owner != owner.id:
            raise _not_found()
        return record

    async def list(
        self, *, owner: Principal, status: TaskStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[TaskRecord], int]:
        return await self.backend.list(owner=owner.id, status=status, limit=limit, offset=offset)

    async def cancel(self, *, owner: Principal, task_id: str) -> TaskRecord:
        """Idempotent. A queued task never starts; a live one stops within a second."""
        record = await self.get(owner=owner, task_id=task_id)
        if record.finished:
            return record
        message = "Cancelled before it started."
        if await self.backend.transition(
            task_id,
            to="cancelled",
            allowed_from=CANCELLABLE_NOW,
            changes={
                "error_code": "cancelled",
                "error_message": message,
                "cancel_requested": True,
                "finished_at": utcnow(),
            },
        ):
            metrics.TASKS_FINISHED.labels("cancelled").inc()
            # Every task's event stream ends with a final event, this one too.
            await self.backend.append_event(
                task_id, ErrorEvent(code="cancelled", message=message).model_dump_json()
            )
        else:
            await self.backend.update(task_id, {"cancel_requested": True})
            await self.backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def control(self, *, owner: Principal, task_id: str, action: ControlAction) -> TaskRecord:
        """stop cancels. pause: a running task becomes pause_requested (the agent goes on
        to its next checkpoint, where the worker makes it paused); a task waiting for input
        keeps waiting and pauses at the checkpoint after. resume lifts either at once."""
        if action == "stop":
            return await self.cancel(owner=owner, task_id=task_id)
        record = await self.get(owner=owner, task_id=task_id)
        if record.finished:
            raise Conflict(f"The task is already {record.status}.", code="task_finished")
        if action == "pause" and record.status == "queued":
            raise Conflict(
                "A queued task cannot be paused; cancel it instead.", code="task_not_running"
            )
        backend = self.backend
        if action == "pause":
            if not await backend.transition(
                task_id,
                to="pause_requested",
                allowed_from=frozenset({"running"}),
                changes={"pause_requested": True},
            ):
                await backend.update_if(
                    task_id, status_in=PAUSE_LATER, changes={"pause_requested": True}
                )
        elif not await backend.transition(
            task_id,
            to="running",  # the agent never stopped: nothing to wait for
            allowed_from=frozenset({"pause_requested"}),
            changes={"pause_requested": False},
        ):
            # paused: the worker resumes the agent and says running once it has; queued (a
            # paused task given back by a stopping worker): it starts unpaused.
            await backend.update_if(
                task_id, status_in=NOT_FINISHED, changes={"pause_requested": False}
            )
        await backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def answer(
        self, *, owner: Principal, task_id: str, request_id: str, value: Any
    ) -> TaskRecord:
        record = await self.get(owner=owner, task_id=task_id)
        pending = record.pending_input
        if record.status not in LIVE_STATUSES or pending is None:
            raise Conflict("The task is not waiting for input.", code="no_input_pending")
        if pending.request_id != request_id:
            raise NotFound(
                "The task is not waiting for this input request.", code="input_request_not_found"
            )
        try:
            coerced = coerce_answer(pending.kind, pending.choices, value)
        except InvalidInput as exc:
            raise Unprocessable(str(exc), code="invalid_input") from None
        answer = TaskAnswer(request_id=request_id, value=coerced)
        await self.backend.update(task_id, {"answer": answer})
        await self.backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def events_of_types(
        self, *, owner: Principal, task_id: str, types: frozenset[str], limit: int, offset: int
    ) -> builtins.list[Event]:
        await self.get(owner=owner, task_id=task_id)
        found: builtins.list[Event] = []
        after = 0
        while True:
            batch = await self.backend.read_events(task_id, after=after, limit=500)
            if not batch:
                break
            found += [e for e in map(decode_event, batch) if e.type in types]
            after = batch[-1].seq
        return found[offset : offset + limit]

    async def follow(
        self, *, task_id: str, after: int, poll_seconds: float = 1.0
    ) -> AsyncIterator[FollowItem]:
        """Every event after ``after``, then live ones, until the task has finished.

        When ``after`` is older than what is retained, first yields EventsMissed (with the
        current record), then continues from the oldest kept event.
        """
        first = await self.backend.first_retained_seq(task_id)
        if first is not None and first > after + 1:
            record = await self.backend.get(task_id)
            yield EventsMissed(from_seq=after + 1, to_seq=first - 1, task=record)
            after = first - 1
        while True:
            batch = await self.backend.wait_events(task_id, after=after, wait_seconds=poll_seconds)
            for stored in batch:
                event = decode_event(stored)
                yield event
                after = stored.seq
                if event.type in TERMINAL_EVENT_TYPES:
                    return
            if not batch:
                record = await self.backend.get(task_id)
                if record is None or record.status in TERMINAL_STATUSES:
                    # Drain what was written between the wait and the status read.
                    rest = await self.backend.read_events(task_id, after=after, limit=10_000)
                    for stored in rest:
                        yield decode_event(stored)
                    return

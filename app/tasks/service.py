"""TaskService: what the task routes do, without HTTP. Keyword-only, owner-checked."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

from app.agents.call_budget import check_budgets
from app.agents.control import coerce_answer
from app.agents.errors import AgentNotFound, InvalidInput
from app.agents.events import ErrorEvent, Event
from app.agents.feed import LoggedEvent
from app.agents.followers import FollowItem
from app.agents.protocol import GivenInput
from app.agents.service import RunService
from app.agents.sessions import SessionService
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.observability import tracing
from app.observability.metrics import CONCURRENCY_REJECTIONS
from app.security.principals import Principal
from app.store.concurrency import TooManyConcurrentRuns
from app.store.run_records import (
    LIVE_STATUSES,
    RunAnswer,
    RunRecord,
    RunStatus,
    StatusSet,
)
from app.store.run_store import RunQuery
from app.tasks import metrics
from app.tasks.backend import IdempotencyKey, TaskBackend
from app.tasks.idempotency import task_fingerprint

ControlAction = Literal["pause", "resume", "stop"]
CANCELLABLE_NOW: StatusSet = frozenset({"queued"})
NOT_FINISHED = CANCELLABLE_NOW | LIVE_STATUSES
# A pause asked for while the agent waits for an answer (or is already pausing) takes
# effect at the next checkpoint; the status keeps saying what the run does until then.
PAUSE_LATER: StatusSet = frozenset({"input_required", "pause_requested", "paused"})
TASK_SLOT_RETRY_AFTER_SECONDS = 5  # a hint: tasks take longer than foreground runs


def _not_found() -> NotFound:
    return NotFound("No task with this id.", code="task_not_found")


class TaskService:
    def __init__(
        self,
        *,
        backend: TaskBackend,
        runs: RunService,
        sessions: SessionService,
    ) -> None:
        self.backend = backend
        self._runs = runs  # a task is a run: its agents, and its events followed the same way
        self._agents = runs.agents
        self._sessions = sessions

    async def submit(
        self,
        *,
        owner: Principal,
        agent: str,
        input: GivenInput,
        session_id: str | None,
        max_steps: int | None,
        params: dict[str, Any],
        idempotency_key: str | None,
    ) -> tuple[RunRecord, bool]:
        limits = await self._runs.limits.of(owner.tenant)  # its tenant's policy, or settings
        if not limits.allows(agent):
            raise AgentNotFound(agent)
        self._agents.require(agent)
        await check_budgets(self._runs.meter, owner.id, limits)  # a spent budget refuses it now
        if session_id is not None:
            await self._sessions.get_owned(owner=owner, session_id=session_id)
        task_id = uuid.uuid4().hex
        # send tasks: the worker's spans continue from here (the context is in the record).
        with tracing.producer_span("tasks", message_id=task_id):
            record = RunRecord(
                id=task_id,
                owner=owner.id,
                agent=agent,
                input=input,
                session_id=session_id,
                max_steps=max_steps,
                params=params,
                trace_context=tracing.current_carrier(),
            )
            idempotency = None
            if idempotency_key is not None:
                idempotency = IdempotencyKey(idempotency_key, task_fingerprint(record))
            submission = await self.backend.submit(
                record, idempotency=idempotency, max_active=limits.max_active_tasks
            )
        if submission.outcome == "over_cap":
            CONCURRENCY_REJECTIONS.labels(kind="tasks").inc()
            raise TooManyConcurrentRuns(
                f"You already have {limits.max_active_tasks} tasks queued or running, the most "
                "one principal may have; submit more when some have finished (or cancel some).",
                limit=limits.max_active_tasks,
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

    async def get(self, *, owner: Principal, task_id: str) -> RunRecord:
        record = await self.backend.store.get(task_id)
        # A foreground run is a run, not a task: GET /v1/runs/{id} reads it.
        if record is None or record.owner != owner.id or record.kind != "task":
            raise _not_found()
        return record

    async def list(
        self, *, owner: Principal, status: RunStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[RunRecord], int]:
        query = RunQuery(owner=owner.id, kind="task", status=status)
        return await self.backend.store.list(query, limit=limit, offset=offset)

    async def cancel(self, *, owner: Principal, task_id: str) -> RunRecord:
        """Idempotent. A queued task never starts; a live one stops within a second."""
        record = await self.get(owner=owner, task_id=task_id)
        if record.finished:
            return record
        message = "Cancelled before it started."
        if await self.backend.store.transition(
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
            await self.backend.store.append_event(
                task_id, ErrorEvent(code="cancelled", message=message).model_dump_json()
            )
        else:
            await self.backend.store.update(task_id, {"cancel_requested": True})
            await self.backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def control(self, *, owner: Principal, task_id: str, action: ControlAction) -> RunRecord:
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
            if not await backend.store.transition(
                task_id,
                to="pause_requested",
                allowed_from=frozenset({"running"}),
                changes={"pause_requested": True},
            ):
                await backend.store.update_if(
                    task_id, status_in=PAUSE_LATER, changes={"pause_requested": True}
                )
        elif not await backend.store.transition(
            task_id,
            to="running",  # the agent never stopped: nothing to wait for
            allowed_from=frozenset({"pause_requested"}),
            changes={"pause_requested": False},
        ):
            # paused: the worker resumes the agent and says running once it has; queued (a
            # paused task given back by a stopping worker): it starts unpaused.
            await backend.store.update_if(
                task_id, status_in=NOT_FINISHED, changes={"pause_requested": False}
            )
        await backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def answer(
        self, *, owner: Principal, task_id: str, request_id: str, value: Any
    ) -> RunRecord:
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
        answer = RunAnswer(request_id=request_id, value=coerced)
        await self.backend.store.update(task_id, {"answer": answer})
        await self.backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def events_of_types(
        self, *, owner: Principal, task_id: str, types: frozenset[str], limit: int, offset: int
    ) -> builtins.list[Event]:
        await self.get(owner=owner, task_id=task_id)
        found: builtins.list[Event] = []
        after = 0
        while True:
            batch = await self.backend.store.read_events(task_id, after=after, limit=500)
            if not batch:
                break
            found += [
                item.event for item in map(LoggedEvent.from_stored, batch) if item.type in types
            ]
            after = batch[-1].seq
        return found[offset : offset + limit]

    def follow(self, *, task_id: str, after: int) -> AsyncIterator[FollowItem]:
        """Every event after ``after``, then live ones, until the task has finished; an
        ``events_missed`` notice first when ``after`` is older than what is retained."""
        return self._runs.follow(task_id, after=after)

    def follow_batches(
        self, *, task_id: str, after: int
    ) -> AsyncGenerator[builtins.list[FollowItem], None]:
        """``follow`` in the batches that were ready together (for a transport)."""
        return self._runs.follow_batches(task_id, after=after)

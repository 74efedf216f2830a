"""TaskService: what the task routes do, without HTTP. Keyword-only, owner-checked."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.agents.control import coerce_answer
from app.agents.errors import InvalidInput
from app.agents.events import EVENT_ADAPTER, ErrorEvent, Event
from app.agents.events import TERMINAL_TYPES as TERMINAL_EVENT_TYPES
from app.agents.registry import AgentRegistry
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.security.principals import Principal
from app.store.sessions import SessionStore
from app.tasks import metrics
from app.tasks.backend import StoredEvent, TaskBackend
from app.tasks.records import LIVE_STATUSES, TERMINAL_STATUSES, TaskRecord

CANCELLABLE_NOW = frozenset({"queued"})


def _not_found() -> NotFound:
    return NotFound("No task with this id.", code="task_not_found")


def decode_event(stored: StoredEvent) -> Event:
    """The stored JSON with ``seq`` replaced by the task-wide sequence number."""
    event = EVENT_ADAPTER.validate_json(stored.json)
    return event.model_copy(update={"seq": stored.seq})


class TaskService:
    def __init__(
        self, *, backend: TaskBackend, agents: AgentRegistry, sessions: SessionStore
    ) -> None:
        self.backend = backend
        self._agents = agents
        self._sessions = sessions

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
        if self._agents.get(agent) is None:
            raise NotFound(f"No agent named {agent!r}.", code="agent_not_found")
        if session_id is not None:
            session = await self._sessions.get(session_id)
            if session is None or session.owner != owner.id:
                raise NotFound("No session with this id.", code="session_not_found")
        record = TaskRecord(
            id=uuid.uuid4().hex,
            owner=owner.id,
            agent=agent,
            input=input,
            session_id=session_id,
            max_steps=max_steps,
            params=params,
        )
        task, created = await self.backend.submit(record, idempotency_key=idempotency_key)
        if created:
            metrics.TASKS_SUBMITTED.inc()
        return task, created

    async def get(self, *, owner: Principal, task_id: str) -> TaskRecord:
        record = await self.backend.get(task_id)
        if record is None or record.owner != owner.id:
            raise _not_found()
        return record

    async def list(
        self, *, owner: Principal, status: str | None, limit: int, offset: int
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
            error_code="cancelled",
            error_message=message,
            cancel_requested=True,
            finished_at=utcnow(),
        ):
            metrics.TASKS_FINISHED.labels("cancelled").inc()
            # Every task's event stream ends with a final event, this one too.
            await self.backend.append_event(
                task_id, ErrorEvent(code="cancelled", message=message).model_dump_json()
            )
        else:
            await self.backend.update(task_id, cancel_requested=True)
            await self.backend.nudge(task_id)
        return await self.get(owner=owner, task_id=task_id)

    async def control(self, *, owner: Principal, task_id: str, action: str) -> TaskRecord:
        if action == "stop":
            return await self.cancel(owner=owner, task_id=task_id)
        record = await self.get(owner=owner, task_id=task_id)
        if record.finished:
            raise Conflict(f"The task is already {record.status}.", code="task_finished")
        if action == "pause" and record.status == "queued":
            raise Conflict(
                "A queued task cannot be paused; cancel it instead.", code="task_not_running"
            )
        await self.backend.update(task_id, pause_requested=action == "pause")
        await self.backend.nudge(task_id)
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
        await self.backend.update(task_id, answer={"request_id": request_id, "value": coerced})
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
    ) -> AsyncIterator[Event | dict[str, Any]]:
        """Every event after ``after``, then live ones, until the task has finished.

        When ``after`` is older than what is retained, first yields an ``events_missed``
        notice (a dict) and the current record, then continues from the oldest kept event.
        """
        first = await self.backend.first_retained_seq(task_id)
        if first is not None and first > after + 1:
            record = await self.backend.get(task_id)
            yield {
                "type": "events_missed",
                "from_seq": after + 1,
                "to_seq": first - 1,
                "task": record.model_dump(mode="json") if record else None,
            }
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

"""What A2A's task methods do to our background tasks (app/tasks/service.py), owner-checked
like every task route: another principal's task, or another agent's, is "task not found".

- A message without ``taskId`` submits a task of the path's agent. Its ``contextId`` is our
  session: given, it must be the caller's session of this agent; absent, a new session is
  made, so the next task in that context sees this one's exchange as history.
- A message with ``taskId`` answers the task's open question (``input-required``): the answer
  goes to the worker holding the run, as POST /v1/tasks/{id}/input does.
- Streams (send, subscribe) read the task's events from the start of its log: what came
  before the stream is folded into the Task sent first, what comes after is sent as it
  happens. The log is durable, so a dropped subscriber that subscribes again loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from a2a.types import (
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    Task,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from app.agents.protocol import input_text, parse_input
from app.protocols.a2a.call import A2ACall
from app.protocols.a2a.messages import answer_value, task_input
from app.protocols.a2a.task_events import TaskEvents, Update
from app.protocols.a2a.task_view import STATUS_FILTER, task_of
from app.store.run_records import RunRecord
from app.store.run_store import RunQuery

TASK_ID = re.compile(r"[0-9a-f]{32}")
CANCEL_WAIT_SECONDS = 5.0  # a cancel answers with the final state when the run stops by then
RELEASE_WAIT_SECONDS = 2.0  # a context's last task letting its session go
RECORD_WAIT_SECONDS = 2.0  # the record saying what the task's events just said
RELEASE_POLL_SECONDS = 0.02
LISTED_MAX = 500  # ListTasks reads the caller's newest tasks, this many at most
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 50, 100
INPUT_LOC = ("params", "message", "parts")


@dataclass(frozen=True, slots=True)
class Sent:
    record: RunRecord
    after: int  # the last event of the task's log before this message
    answered: bool  # the message answered the task's question (else it started the task)


class A2ATasks:
    async def get(self, call: A2ACall, task_id: str) -> RunRecord:
        if TASK_ID.fullmatch(task_id) is None:
            raise TaskNotFoundError("No task with this id.")
        record = await call.services.tasks.get(owner=call.principal, task_id=task_id)
        if record.agent != call.agent:
            raise TaskNotFoundError("No task with this id.")
        return record

    async def send(self, call: A2ACall, request: SendMessageRequest) -> Sent:
        message = request.message
        if message.task_id:
            return await self._answer(call, request)
        services = call.services
        agent = services.agents.require(call.agent)
        given = task_input(message, agent)
        if len(input_text(given)) > call.settings.MAX_INPUT_CHARS:
            raise InvalidParamsError(
                f"The input is longer than {call.settings.MAX_INPUT_CHARS} characters."
            )
        parse_input(agent, given, loc=INPUT_LOC)  # refused now, not by the worker later
        session_id = await self._context(call, message.context_id)
        record, _ = await services.tasks.submit(
            owner=call.principal,
            agent=call.agent,
            input=given,
            session_id=session_id,
            max_steps=None,
            params={},
            idempotency_key=None,
        )
        return Sent(record=record, after=0, answered=False)

    async def _context(self, call: A2ACall, context_id: str) -> str:
        sessions = call.services.sessions
        if not context_id:
            return (await sessions.create(owner=call.principal, agent=call.agent)).id
        session = await sessions.get_owned(owner=call.principal, session_id=context_id)
        if session.agent != call.agent:
            raise InvalidParamsError(f"This contextId belongs to agent {session.agent!r}.")
        await self._wait_for_release(call, context_id)
        return context_id

    async def _wait_for_release(self, call: A2ACall, context_id: str) -> None:
        """A context runs one task at a time. A task still working in it refuses the message;
        one that has just ended (its end is logged before it lets the session go) is waited
        for, briefly, so a client that saw it complete can go on at once."""
        sessions = call.services.sessions
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELEASE_WAIT_SECONDS
        while (holder := await sessions.holder(session_id=context_id)) is not None:
            record = await call.services.runs.store.get(holder)
            if record is None or not record.finished or loop.time() > deadline:
                raise UnsupportedOperationError(
                    f"Task {holder} is still in progress in this context: answer it "
                    "(taskId), cancel it, or wait for it to end."
                )
            await asyncio.sleep(RELEASE_POLL_SECONDS)

    async def _answer(self, call: A2ACall, request: SendMessageRequest) -> Sent:
        message = request.message
        record = await self.get(call, message.task_id)
        if message.context_id and message.context_id != (record.session_id or ""):
            raise InvalidParamsError("The contextId is not the task's.")
        if record.finished:
            raise UnsupportedOperationError(
                f"The task is {record.status}; to go on, send a message without taskId in "
                "its contextId (a new task with this one's history)."
            )
        pending = record.pending_input
        if record.status != "input_required" or pending is None:
            raise UnsupportedOperationError("The task is not waiting for input.")
        value = answer_value(message)
        tasks = call.services.tasks
        after = await tasks.backend.store.last_seq(record.id)
        record = await tasks.answer(
            owner=call.principal, task_id=record.id, request_id=pending.request_id, value=value
        )
        return Sent(record=record, after=after, answered=True)

    # -- following a task --------------------------------------------------------------------
    async def follow(
        self, call: A2ACall, events: TaskEvents, *, after: int, answered: bool, until_input: bool
    ) -> AsyncIterator[Task | Update]:
        """The Task as of event ``after``, then every update after it; ends at the final state
        (or, ``until_input``, at a question: the answer comes as another message)."""
        sent_task = False
        if after == 0:
            sent_task = True
            yield events.task()
        async for item in call.services.runs.follow(events.task_id, after=0):
            updates = events.feed(item)
            if not sent_task:
                if events.last_seq < after:
                    continue
                if answered:
                    events.answered()
                sent_task = True
                yield events.task()
            else:
                if updates and events.stopped is not None:
                    await self._record_caught_up(call, events)
                for update in updates:
                    yield update
            if events.finished or (until_input and events.stopped == "input_required"):
                return
        if not sent_task:
            yield events.task()

    async def _record_caught_up(self, call: A2ACall, events: TaskEvents) -> None:
        """Wait (briefly) until the task's record says what its events just said: the worker
        writes the record after the event is logged, and a client told "input-required" may
        answer at once, or one told "completed" read the task at once."""
        store = call.services.runs.store
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_WAIT_SECONDS
        while loop.time() < deadline:
            record = await store.get(events.task_id)
            if record is None or record.finished:
                return
            pending = record.pending_input
            if events.stopped == "input_required" and pending is not None:
                if pending.request_id == events.question:
                    return
            await asyncio.sleep(RELEASE_POLL_SECONDS)

    async def wait(self, call: A2ACall, sent: Sent, *, history_length: int | None) -> Task:
        """SendMessage's blocking mode: the task once it has ended or asks a question."""
        events = TaskEvents(sent.record, call.links, chunks=False)
        stream = self.follow(
            call, events, after=sent.after, answered=sent.answered, until_input=True
        )
        async for _ in stream:
            pass
        return events.task(history_length=history_length)

    async def cancel(self, call: A2ACall, task_id: str) -> Task:
        record = await self.get(call, task_id)
        if record.finished:
            raise TaskNotCancelableError(f"The task is already {record.status}.")
        tasks = call.services.tasks
        await tasks.cancel(owner=call.principal, task_id=task_id)
        events = TaskEvents(record, call.links, chunks=False)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                stream = self.follow(call, events, after=0, answered=False, until_input=False)
                async for _ in stream:
                    pass
        if events.finished:
            return events.task()
        # Still stopping (a worker elsewhere): the record says how far it got.
        return task_of(await self.get(call, task_id), call.links)

    async def list(self, call: A2ACall, request: ListTasksRequest) -> ListTasksResponse:
        status = None
        if request.status:
            status = STATUS_FILTER.get(request.status)
            if status is None:  # a state our tasks never take
                return ListTasksResponse(next_page_token="", page_size=0, total_size=0)
        try:
            offset = int(request.page_token or "0")
        except ValueError:
            raise InvalidParamsError("pageToken is not one this server gave.") from None
        size = min(request.page_size or PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
        if offset < 0 or size < 0:
            raise InvalidParamsError("pageToken and pageSize must not be negative.")
        query = RunQuery(
            owner=call.principal.id,
            kind="task",
            status=status,
            session_id=request.context_id or None,
        )
        records, _ = await call.services.tasks.backend.store.list(query, limit=LISTED_MAX, offset=0)
        mine = [record for record in records if record.agent == call.agent]
        history = request.history_length if request.HasField("history_length") else None
        end = offset + size
        page = [task_of(record, call.links, history_length=history) for record in mine[offset:end]]
        return ListTasksResponse(
            tasks=page,
            next_page_token=str(end) if end < len(mine) else "",
            page_size=size,
            total_size=len(mine),
        )

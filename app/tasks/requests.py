"""The client's requests on a task (cancel, pause/resume, answers), applied to the run a
worker holds.

The API stores a request on the record and nudges; the holder applies it on the nudge, after
the run asks a question, and on every heartbeat, so a lost nudge costs at most one beat.

Pause is honest about when it takes effect: the agent stops only at its next
``ctx.checkpoint()``. Until then the task is ``pause_requested`` (or stays
``input_required`` while a question is open); at the checkpoint it becomes ``paused``; a run
that ends first simply ends, and its record drops the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from app.agents.control import RunControl
from app.agents.errors import InvalidInput
from app.agents.run import Run
from app.core.lifecycle import raise_if_cancelling
from app.store.run_records import StatusSet
from app.tasks.backend import TaskBackend

log = structlog.get_logger(__name__)

PAUSING_ONLY: StatusSet = frozenset({"pause_requested", "paused"})
RUNNING: StatusSet = frozenset({"running"})
PAUSING = RUNNING | PAUSING_ONLY  # the agent is not waiting for an answer
ANSWERABLE: StatusSet = frozenset({"input_required"})


@dataclass
class _Held:
    run: Run
    # Serialises a nudge, a heartbeat and a new question: their record updates must not
    # interleave.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    park_watch: asyncio.Task[None] | None = None  # while a pause waits to take effect


class ClientRequests:
    def __init__(
        self, backend: TaskBackend, *, on_parked: Callable[[], None] | None = None
    ) -> None:
        self._backend = backend
        self._held: dict[str, _Held] = {}
        self._on_parked = on_parked  # a pause took effect: the worker may reuse the slot

    def hold(self, task_id: str, run: Run) -> None:
        self._held[task_id] = _Held(run)

    def drop(self, task_id: str) -> None:
        held = self._held.pop(task_id, None)
        if held is not None and held.park_watch is not None:
            held.park_watch.cancel()

    def lock(self, task_id: str) -> asyncio.Lock:
        held = self._held.get(task_id)
        return held.lock if held is not None else asyncio.Lock()

    async def apply(self, task_id: str) -> None:
        held = self._held.get(task_id)
        if held is not None:
            async with held.lock:
                await self._apply_locked(task_id, held)

    async def _apply_locked(self, task_id: str, held: _Held) -> None:
        backend, run, control = self._backend, held.run, held.run.control
        record = await backend.store.get(task_id)
        if record is None:
            return
        if record.cancel_requested:
            run.cancel("cancelled")
            return
        if record.pause_requested:
            if not control.paused:
                control.pause()  # takes effect at the agent's next checkpoint
                held.park_watch = asyncio.create_task(
                    self._paused_when_parked(task_id, control), name=f"task-park-{task_id}"
                )
            if control.parked:
                await backend.store.transition(task_id, to="paused", allowed_from=PAUSING)
            elif record.status in ("running", "paused"):
                await backend.store.transition(
                    task_id, to="pause_requested", allowed_from=frozenset({"running", "paused"})
                )
        else:
            if control.paused:
                watch, held.park_watch = held.park_watch, None
                if watch is not None and watch is not asyncio.current_task():
                    watch.cancel()
                control.resume()
            if record.status in PAUSING_ONLY:
                await backend.store.transition(task_id, to="running", allowed_from=PAUSING_ONLY)
        if record.answer is None:
            return
        request_id, value = record.answer.request_id, record.answer.value
        await backend.store.update(task_id, {"answer": None})
        if request_id not in {pending.request_id for pending in control.pending}:
            return  # already answered, or a stale request
        # The record first: the agent may ask its next question the moment it has the answer.
        await backend.store.transition(
            task_id,
            to="pause_requested" if control.paused else "running",
            allowed_from=ANSWERABLE,
            changes={"pending_input": None},
        )
        with contextlib.suppress(KeyError, InvalidInput):  # validated by the API already
            run.answer(request_id, value)

    async def _paused_when_parked(self, task_id: str, control: RunControl) -> None:
        """Say paused the moment the agent stops at its checkpoint (not before)."""
        await control.wait_parked()
        if self._on_parked is not None:
            self._on_parked()
        try:
            await self.apply(task_id)
        except Exception as exc:  # storage away: the next heartbeat applies it again
            raise_if_cancelling()
            log.warning("task_pause_not_recorded", task_id=task_id, error=type(exc).__name__)

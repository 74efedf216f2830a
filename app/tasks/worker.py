"""The worker loop: take deliveries, run them as agent runs, persist every event.

At-least-once: a delivery is acknowledged only after the task reached an end state. The run
writes the task's event log itself (app/agents/journal.py), going on after what earlier attempts
wrote; the worker keeps the record in step with the events. While a task runs, a heartbeat
renews its lease and re-applies the client's requests (cancel, pause, answers:
app/tasks/requests.py) so a missed nudge costs at most one beat. A delivery whose worker died is
reclaimed after TASK_LEASE_SECONDS by any live worker; after MAX_ATTEMPTS deliveries it fails
with ``worker_lost``. On shutdown the worker stops taking work, lets running tasks finish within
WORKER_SHUTDOWN_GRACE_SECONDS, then gives the rest back for immediate redelivery.

Parking: a task whose agent waits for a human (an open input request, or a pause that took
effect at a checkpoint) does not count against WORKER_CONCURRENCY, so one principal's unanswered
questions cannot hold every slot; its lease is still renewed. The agent stays a live coroutine
here: a coroutine cannot be serialised mid-run, and re-running the agent to reach the question
again would repeat its tool calls and, with a non-deterministic model, ask another question.
So an answer resumes it on its worker at once; if that worker dies, it is redelivered after
the lease and re-run. At most WORKER_MAX_PARKED tasks are parked per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from functools import partial

import structlog

from app.agents.events import (
    ErrorEvent,
    Event,
    InputRequired,
    PlanEvent,
    RunCompleted,
    StepEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.protocol import parse_input
from app.agents.run import Run
from app.agents.run_request import RunRequest
from app.agents.service import RunService
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import AppError
from app.core.lifecycle import raise_if_cancelling
from app.observability import tracing
from app.security.principals import Principal
from app.store.run_records import (
    LIVE_STATUSES,
    TASK_ENDINGS,
    TERMINAL_STATUSES,
    PendingInputInfo,
    RunRecord,
    RunResult,
    StatusSet,
    kept_output,
)
from app.tasks import metrics
from app.tasks.backend import Delivery, TaskBackend
from app.tasks.requests import PAUSING, ClientRequests

log = structlog.get_logger(__name__)

PENDING_FIELDS = {"request_id", "kind", "prompt", "choices"}  # of an InputRequired event

QUEUED: StatusSet = frozenset({"queued"})
NOT_FINISHED = QUEUED | LIVE_STATUSES


@dataclass
class _Active:
    delivery: Delivery
    run: Run
    started: float = field(default_factory=time.monotonic)
    reasoning: list[str] = field(default_factory=list)
    releasing: bool = False

    @property
    def parked(self) -> bool:
        """The agent waits for a human (an answer, or a resume at a checkpoint)."""
        control = self.run.control
        return bool(control.pending) or control.parked


def principal_for_owner(owner: str) -> Principal:
    """The task runs as its owner; scopes were checked when it was submitted.

    An owner id no principal kind can read (a record written by a newer version, or by
    hand) fails the task with ``invalid_owner`` instead of leaving it queued for good."""
    try:
        return Principal.from_id(owner)
    except ValueError:
        raise AppError(
            "The task's owner is not a principal this service knows.", code="invalid_owner"
        ) from None


class TaskWorker:
    def __init__(
        self, *, settings: Settings, backend: TaskBackend, runs: RunService, consumer: str
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._runs = runs
        self.consumer = consumer
        self._active: dict[str, _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._consuming_stopped = asyncio.Event()
        self._requests = ClientRequests(backend, on_parked=self._slot_freed.set)
        self._lease = settings.TASK_LEASE_SECONDS
        self._block_ms = settings.WORKER_DEQUEUE_BLOCK_MS

    # -- lifecycle --------------------------------------------------------------------------
    async def serve(self) -> None:
        helpers = [
            asyncio.create_task(self._backend.listen(self._on_nudge), name="task-nudges"),
            asyncio.create_task(self._heartbeat_loop(), name="task-heartbeat"),
        ]
        try:
            await self._consume_loop()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.wait(helpers, timeout=2)  # bounded: one stuck in a client library

    async def shutdown(self) -> None:
        """Stop taking work; let running tasks finish in the grace period; release the rest."""
        self._stopping.set()
        await self._backend.interrupt_dequeue()
        # A blocking read must end first, or a released task could come straight back here.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._consuming_stopped.wait(), self._block_ms / 1000 + 1)
        if self._tasks:
            _, pending = await asyncio.wait(
                set(self._tasks), timeout=self._settings.WORKER_SHUTDOWN_GRACE_SECONDS
            )
            for task_id, active in list(self._active.items()):
                active.releasing = True
                active.run.cancel("shutdown", abandon=True)
                log.info("task_released", task_id=task_id)
            if pending:
                await asyncio.wait(pending, timeout=5)

    # -- taking work ------------------------------------------------------------------------
    async def _consume_loop(self) -> None:
        try:
            await self._take_work()
        finally:
            self._consuming_stopped.set()

    def _busy(self) -> int:
        """Slots in use: every task this worker holds, less the parked ones (up to the
        WORKER_MAX_PARKED that may be left out)."""
        parked = sum(1 for active in self._active.values() if active.parked)
        metrics.TASKS_PARKED.set(parked)
        return len(self._tasks) - min(parked, self._settings.WORKER_MAX_PARKED)

    async def _take_work(self) -> None:
        concurrency = self._settings.WORKER_CONCURRENCY
        last_reclaim = 0.0
        backoff = 0.1
        while not self._stopping.is_set():
            free = concurrency - self._busy()
            if free <= 0:
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 1.0)
                continue
            try:
                deliveries = []
                if time.monotonic() - last_reclaim >= self._lease / 2:
                    last_reclaim = time.monotonic()
                    deliveries = await self._backend.reclaim(
                        consumer=self.consumer, min_idle_ms=int(self._lease * 1000), count=free
                    )
                if len(deliveries) < free:
                    deliveries += await self._backend.dequeue(
                        consumer=self.consumer,
                        count=free - len(deliveries),
                        block_ms=self._block_ms,
                    )
                metrics.QUEUE_DEPTH.set(await self._backend.queue_depth())
                backoff = 0.1
            except Exception as exc:  # Redis away: wait and retry, never crash the loop
                raise_if_cancelling()
                log.warning("task_queue_unavailable", error=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._stopping.is_set():  # shutdown began during the read: hand them back
                for delivery in deliveries:
                    await self._backend.release(delivery)
                break
            for delivery in deliveries:
                if delivery.task_id in self._active:
                    continue  # our own lease came back to us: already running here
                task = asyncio.create_task(self._execute(delivery), name=f"task-{delivery.task_id}")
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    # -- running one task -------------------------------------------------------------------
    async def _execute(self, delivery: Delivery) -> None:
        try:
            record = await self._backend.store.get(delivery.task_id)
            carrier = record.trace_context if record is not None else None  # the submitter's
            with tracing.consumer_span("tasks", message_id=delivery.task_id, carrier=carrier):
                await self._execute_unsafe(delivery, record)
        except Exception as exc:  # storage failed mid-task: leave it for redelivery
            raise_if_cancelling()
            log.warning(
                "task_execution_interrupted", task_id=delivery.task_id, error=type(exc).__name__
            )
            active = self._active.pop(delivery.task_id, None)
            if active is not None:
                active.run.cancel("worker_error", abandon=True)

    async def _execute_unsafe(self, delivery: Delivery, record: RunRecord | None) -> None:
        backend, task_id = self._backend, delivery.task_id
        if record is None or record.status in TERMINAL_STATUSES:
            await backend.ack(delivery)
            return
        if record.cancel_requested:
            await self._finish(task_id, ErrorEvent(code="cancelled", message="Cancelled."))
            await backend.ack(delivery)
            return
        attempts = record.attempts + 1
        if attempts > self._settings.MAX_ATTEMPTS:
            await self._finish(
                task_id,
                ErrorEvent(
                    code="worker_lost",
                    message=f"The task's worker was lost {record.attempts} times.",
                ),
            )
            await backend.ack(delivery)
            return
        now = utcnow()
        moved = await backend.store.transition(
            task_id,
            to="running",
            allowed_from=NOT_FINISHED,
            changes={
                "attempts": attempts,
                "worker": self.consumer,
                "holder": self._runs.holder,  # reachable for control from any replica
                "started_at": record.started_at or now,
                "pending_input": None,
            },
        )
        if not moved:  # cancelled between the read and now
            await backend.ack(delivery)
            return
        if attempts == 1:
            metrics.DISPATCH_LATENCY.observe((now - record.submitted_at).total_seconds())
        else:
            metrics.REDELIVERIES.inc()
        try:
            request = RunRequest(
                agent=record.agent,
                input=parse_input(self._runs.agents.require(record.agent), record.input),
                principal=principal_for_owner(record.owner),
                session_id=record.session_id,
                params=record.params,
                max_steps=record.max_steps,
            )
            # The log goes on after what earlier attempts (or a cancel) wrote.
            after_seq = await backend.store.last_seq(task_id)
            run = await self._runs.start(
                request,
                run_id=task_id,
                foreground=False,
                after_seq=after_seq,
                on_asked=partial(self._asked, task_id),
            )
        except AppError as exc:  # agent gone, input not fitting its model, session busy/gone
            await self._finish(task_id, ErrorEvent(code=exc.code, message=exc.detail))
            await backend.ack(delivery)
            return
        active = _Active(delivery=delivery, run=run)
        self._active[task_id] = active
        self._requests.hold(task_id, run)
        metrics.TASKS_RUNNING.inc()
        try:
            await self._requests.apply(task_id)  # made before it was held here (a pause kept)
            # The run logs its own events; the worker keeps the task's record in step.
            async for event in run.events():
                if active.releasing and isinstance(event, ErrorEvent):
                    break  # shutting down: the next worker redoes it, no failure recorded
                await self._apply(task_id, active, event)
        finally:
            self._requests.drop(task_id)
            metrics.TASKS_RUNNING.dec()
            self._active.pop(task_id, None)
            metrics.TASK_DURATION.observe(time.monotonic() - active.started)
        if active.releasing:
            await backend.store.transition(
                task_id, to="queued", allowed_from=LIVE_STATUSES, changes={"attempts": attempts - 1}
            )
            await backend.release(delivery)
            return
        await backend.ack(delivery)

    async def _asked(self, task_id: str, event: InputRequired) -> None:
        """The question on the record before any reader sees it (an answer sent at once is
        accepted). A pause asked for waits too (pause_requested) until the next checkpoint."""
        pending = PendingInputInfo(**event.model_dump(include=PENDING_FIELDS))
        async with self._requests.lock(task_id):
            await self._backend.store.transition(
                task_id,
                to="input_required",
                allowed_from=PAUSING,
                changes={"pending_input": pending},
            )

    async def _apply(self, task_id: str, active: _Active, event: Event) -> None:
        backend = self._backend
        if isinstance(event, StepEvent):
            await backend.store.update(task_id, {"steps_taken": event.number})
        elif isinstance(event, PlanEvent):
            active.reasoning.append("Plan: " + "; ".join(event.items))
        elif isinstance(event, ToolCallEvent):
            active.reasoning.append(f"Called {event.name} with {event.arguments}")
        elif isinstance(event, ToolResultEvent):
            active.reasoning.append(f"Tool result: {event.output}")
        elif isinstance(event, InputRequired):  # the record says so already (_asked)
            self._slot_freed.set()  # parked: its slot may take other work meanwhile
            await self._requests.apply(task_id)  # an answer may already be waiting
        elif isinstance(event, RunCompleted):
            result = RunResult(
                output=event.output,
                reasoning=active.reasoning,
                usage=event.usage,
                cached=event.cached,
                execution_time=event.execution_time,
            )
            await backend.store.transition(
                task_id,
                to="completed",
                allowed_from=LIVE_STATUSES,
                # A pause that never took effect no longer applies to anything.
                changes={
                    "result": result,
                    "usage": event.usage,
                    "finished_at": utcnow(),
                    "pending_input": None,
                    "pause_requested": False,
                },
            )
            metrics.TASKS_FINISHED.labels("completed").inc()
        elif isinstance(event, ErrorEvent):
            await self._finish(task_id, event, append=False, output=active.run.partial_output)

    async def _finish(
        self, task_id: str, error: ErrorEvent, *, append: bool = True, output: str = ""
    ) -> None:
        status = TASK_ENDINGS.get(error.code, "failed")
        if append:
            await self._backend.store.append_event(task_id, error.model_dump_json())
        moved = await self._backend.store.transition(
            task_id,
            to=status,
            allowed_from=NOT_FINISHED,
            changes={
                "error_code": error.code,
                "error_message": error.message,
                "finished_at": utcnow(),
                "pending_input": None,
                "pause_requested": False,
                **kept_output(status, output),
            },
        )
        if moved:
            metrics.TASKS_FINISHED.labels(status).inc()

    # -- client requests --------------------------------------------------------------------
    async def _on_nudge(self, task_id: str) -> None:
        await self._requests.apply(task_id)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            actives = list(self._active.items())
            try:
                await self._backend.heartbeat(
                    consumer=self.consumer, deliveries=[a.delivery for _, a in actives]
                )
                for task_id, _ in actives:
                    await self._requests.apply(task_id)
            except Exception as exc:  # the next beat retries; the lease covers a short outage
                raise_if_cancelling()
                log.warning("task_heartbeat_failed", error=type(exc).__name__)

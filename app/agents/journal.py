"""One run's record and event log, as kept by the process that runs it.

Every event goes to the log (batched, app/agents/log_writer.py). A foreground run's record is
kept here too: created before anyone learns the run's id, ``input_required`` while a question
waits, and its end (status, output, usage, error) written before any reader sees the terminal
event. A background task's record belongs to its worker (app/tasks/worker.py), so its journal
only logs. Store failures after the start are logged, never raised: the run and the readers in
this process go on without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from app.agents.events import ErrorEvent, InputRequired, RunCompleted
from app.agents.feed import LoggedEvent
from app.agents.log_writer import RunLogBatcher, RunLogWriter
from app.core.clock import utcnow
from app.store.run_records import (
    LIVE_STATUSES,
    PendingInputInfo,
    RunKind,
    RunRecord,
    RunResult,
    RunStatus,
    RunUpdate,
    StatusSet,
    kept_output,
)
from app.store.run_store import FirstEventsNotLogged, RunStore, StoredEvent, tell_observer

if TYPE_CHECKING:
    from app.agents.run import Run

log = structlog.get_logger(__name__)

ASKING: StatusSet = frozenset({"running"})
ENDED_AS: dict[str, RunStatus] = {"cancelled": "cancelled", "incomplete": "incomplete"}
ANSWERED: StatusSet = frozenset({"input_required"})
# The store's client has already retried once within its own short timeouts: wait a little
# longer before the second try of a run's end (the one write whose loss costs a webhook).
RETRY_AFTER_SECONDS = 0.2


class RunJournal:
    def __init__(
        self,
        store: RunStore | None,
        run_id: str,
        *,
        keeps_record: bool,
        batcher: RunLogBatcher | None = None,
    ) -> None:
        self._store = store
        self._run_id = run_id
        # Redis commands to send with the record's end (the run's slot release), and whether
        # they were: the service then has nothing left to release.
        self.also_on_finish: list[tuple[str, ...]] = []
        self.also_sent = False
        # A task's record is its worker's: the worker writes a question there (as asked()
        # does for a foreground run) before any reader sees the event.
        self.on_asked: Callable[[InputRequired], Awaitable[None]] | None = None
        kind: RunKind = "run" if keeps_record else "task"
        self._writer = None
        if store is not None:
            batcher = batcher or RunLogBatcher(store)
            self._writer = RunLogWriter(batcher, run_id, kind=kind)
        self._keeps_record = keeps_record and store is not None

    @property
    def keeps_record(self) -> bool:
        return self._keeps_record

    async def open(self, record: RunRecord, first: LoggedEvent) -> None:
        """Store a foreground run's record with its first event (one store call); a task's
        first event is just logged. The store away: the run goes on without record or log
        (not resumable, like the LLM cache and rate limits, it fails open)."""
        if not self._keeps_record or self._store is None:
            self.log(first)
            return
        try:
            await self._store.create(record, [first.stored()])
        except FirstEventsNotLogged as exc:  # the record stands; the log lacks its start
            assert self._writer is not None  # noqa: S101 - set whenever a record is kept
            self._writer.failed([first.stored()], exc)
        except Exception as exc:
            log.warning("run_record_write_failed", run_id=self._run_id, error=type(exc).__name__)
            self._keeps_record = False
            self._writer = None

    def log(self, item: LoggedEvent) -> None:
        if self._writer is not None:
            self._writer.add(item.stored())

    def abandon(self) -> None:
        """This attempt's ending is not logged (its task goes back to the queue)."""
        if self._writer is not None:
            self._writer.abandon()

    async def asked(self, event: InputRequired) -> None:
        if self.on_asked is not None:
            await self.on_asked(event)
            return
        pending = PendingInputInfo(
            request_id=event.request_id, kind=event.kind, prompt=event.prompt, choices=event.choices
        )
        await self._move("input_required", ASKING, {"pending_input": pending})

    async def answered(self) -> None:
        await self._move("running", ANSWERED, {"pending_input": None})

    async def close(self, run: Run, terminal: RunCompleted | ErrorEvent) -> None:
        """Write the rest of the log and the record's end: one store call for both."""
        if self._writer is None or self._store is None:
            return
        rest = await self._writer.take_rest()
        if not self._keeps_record:  # a task: its worker writes the record
            if rest:
                try:
                    await self._store.append_events(self._run_id, rest)
                except Exception as exc:
                    self._writer.failed(rest, exc)
            return
        changes: RunUpdate = {
            "finished_at": utcnow(),
            "pending_input": None,
            "usage": run.ctx.llm.usage,
            "steps_taken": run.ctx.steps_taken,
        }
        status: RunStatus
        if isinstance(terminal, RunCompleted):
            status = "completed"
            changes["result"] = RunResult(
                output=terminal.output,
                usage=terminal.usage,
                cached=terminal.cached,
                execution_time=terminal.execution_time,
            )
        else:
            status = ENDED_AS.get(run.status, "failed")
            changes["error_code"] = terminal.code
            changes["error_message"] = terminal.message
            changes.update(kept_output(status, run.partial_output, run.ctx.llm.usage))
        try:
            await self._finish(self._store, rest, status, changes)
            self.also_sent = bool(self.also_on_finish)
        except Exception as exc:
            self._writer.failed(rest, exc)
            log.warning("run_record_write_failed", run_id=self._run_id, error=type(exc).__name__)

    async def _finish(
        self, store: RunStore, rest: list[StoredEvent], status: RunStatus, changes: RunUpdate
    ) -> None:
        """The record's end, tried twice: one timed-out reply (a loaded Redis, a failover)
        must not leave a finished run ``running`` and its webhook unsent. Both parts are
        idempotent (events append by sequence number, the move only from a live status); a
        first try that was applied although its reply was lost is known by its
        ``finished_at``, and the observer (the webhook outbox) is told of it then."""

        async def finish() -> bool:
            return await store.finish(
                self._run_id,
                rest,
                kind="run",
                to=status,
                allowed_from=LIVE_STATUSES,
                changes=changes,
                also=self.also_on_finish,
            )

        try:
            await finish()
            return
        except Exception as exc:
            log.info("run_record_write_retried", run_id=self._run_id, error=type(exc).__name__)
        await asyncio.sleep(RETRY_AFTER_SECONDS)
        if await finish():
            return
        record = await store.get(self._run_id)
        if record is not None and (record.status, record.finished_at) == (
            status,
            changes.get("finished_at"),
        ):
            await tell_observer(store.observer, self._run_id, status)

    async def _move(self, to: RunStatus, allowed: StatusSet, changes: RunUpdate) -> None:
        if not self._keeps_record or self._store is None:
            return
        try:
            await self._store.transition(self._run_id, to=to, allowed_from=allowed, changes=changes)
        except Exception as exc:
            log.warning("run_record_write_failed", run_id=self._run_id, error=type(exc).__name__)


async def end_lost_run(store: RunStore, run_id: str) -> None:
    """Write the end of a foreground run whose process died: failed ``run_lost``, and the
    same error as the last event of its log (unless something ended it meanwhile)."""
    message = "The process running this run stopped before it ended."
    if await store.transition(
        run_id,
        to="failed",
        allowed_from=LIVE_STATUSES,
        changes={
            "error_code": "run_lost",
            "error_message": message,
            "finished_at": utcnow(),
            "pending_input": None,
        },
    ):
        error = ErrorEvent(code="run_lost", message=message)
        await store.append_event(run_id, error.model_dump_json(), kind="run")

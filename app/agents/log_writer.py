"""Appends one run's events to its log in batches, without ever holding the run back.

The run hands each event over and goes on; one flush at a time writes everything handed over
since the last one in a single call (one Redis round trip for a whole burst of tokens). A
store failure loses those events from the log only: readers in this process still get them
from the feed, a reader elsewhere gets ``events_missed``; the run goes on. The run drains
the writer before it reports its end, so a finished run's log is complete.
"""

from __future__ import annotations

import asyncio

import structlog

from app.agents import metrics
from app.store.run_records import RunKind
from app.store.run_store import RunStore, StoredEvent

log = structlog.get_logger(__name__)


class RunLogWriter:
    def __init__(self, store: RunStore, run_id: str, *, kind: RunKind) -> None:
        self._store = store
        self._kind = kind  # its retention
        self._run_id = run_id
        # Never trimmed here: dropping unwritten events would hole the log. What waits is
        # bounded by what the run makes during one store call (a failing call fails fast).
        self._pending: list[StoredEvent] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, event: StoredEvent) -> None:
        if self._closed:
            return
        self._pending.append(event)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name=f"run-log-{self._run_id}")

    def abandon(self) -> None:
        """Log nothing more (the run is handed back for another worker to redo): what was
        added is still written, the ending of this attempt is not."""
        self._closed = True

    async def drain(self) -> None:
        """Until everything added so far is written (or failed)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def take_rest(self) -> list[StoredEvent]:
        """Close the writer and hand back what it has not written yet, once the write in
        flight is done: the run's end writes them with its record, in one call."""
        self._closed = True
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
        rest, self._pending = self._pending, []
        return rest

    def failed(self, events: list[StoredEvent], exc: Exception) -> None:
        metrics.RUN_LOG_WRITE_FAILURES.inc(len(events))
        log.warning(
            "run_log_write_failed",
            run_id=self._run_id,
            events=len(events),
            error=type(exc).__name__,
        )

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._store.append_events(self._run_id, batch, kind=self._kind)
                except Exception as exc:  # the run and local readers go on without the log
                    self.failed(batch, exc)
        finally:
            self._flusher = None

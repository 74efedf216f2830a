"""Appends one run's events to its log in batches, without ever holding the run back.

The run hands each event over and goes on; one flush at a time writes everything handed over
since the last one in a single call (one Redis round trip for a whole burst of tokens), and
the run's end writes the rest together with its record, so a finished run's log is complete.
A store failure loses those events from the log only: readers in this process still get
them from the feed, a reader elsewhere gets ``events_missed``; the run goes on.
"""

from __future__ import annotations

import asyncio

import structlog

from app.agents import metrics
from app.store.run_records import RunKind
from app.store.run_store import RunStore, StoredEvent

log = structlog.get_logger(__name__)

# How long the first waiting event waits before a flush: 0 = the next loop iteration. 5 ms
# was measured too (bench/run_log.py): the same CPU per token, and 5 ms more for readers on
# other replicas.
FLUSH_DELAY_SECONDS = 0.0


class RunLogWriter:
    def __init__(self, store: RunStore, run_id: str, *, kind: RunKind) -> None:
        self._store = store
        self._kind = kind  # its retention
        self._run_id = run_id
        # Never trimmed here: dropping unwritten events would hole the log. What waits is
        # bounded by what the run makes during one store call (a failing call fails fast).
        self._pending: list[StoredEvent] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing = False  # the flusher is in a store call (not just waiting to start)
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

    async def take_rest(self) -> list[StoredEvent]:
        """Close the writer and hand back what it has not written yet (after the write in
        flight, if any): the run's end writes them with its record, in one call."""
        self._closed = True
        flusher = self._flusher
        if flusher is not None:
            if not self._writing:  # still gathering: the end takes its events instead
                flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
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
                # Gather what the run makes meanwhile into one call; a run that ends first
                # writes its whole log with its record's end.
                await asyncio.sleep(FLUSH_DELAY_SECONDS)
                batch, self._pending = self._pending, []
                self._writing = True
                try:
                    await self._store.append_events(self._run_id, batch, kind=self._kind)
                except Exception as exc:  # the run and local readers go on without the log
                    self.failed(batch, exc)
                finally:
                    self._writing = False
                if self._closed:  # take_rest waits for this write and takes the rest
                    return
        finally:
            self._flusher = None

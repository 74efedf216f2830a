"""Appends runs' events to their logs in batches, without ever holding a run back.

A run hands each event over and goes on. One flush at a time, per process, writes everything
every run has handed over since the last flush in a single store call (one Redis round trip
for a burst of tokens, and for the tokens a thousand slowly streaming runs made meanwhile),
and a run's end writes its rest together with its record, so a finished run's log is
complete. A store failure loses those events from the log only: readers in this process
still get them from the feed, a reader elsewhere gets ``events_missed``; the run goes on.
"""

from __future__ import annotations

import asyncio

import structlog

from app.agents import metrics
from app.store.run_records import RunKind
from app.store.run_store import RunBatch, RunStore, StoredEvent

log = structlog.get_logger(__name__)

# How long the first waiting event waits before a flush: 0 = the next loop iteration. 5 ms
# was measured too (bench/run_log.py): the same CPU per token, and 5 ms more for readers on
# other replicas.
FLUSH_DELAY_SECONDS = 0.0


class RunLogBatcher:
    """The process's one writer of run logs (one per run store)."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        # Never trimmed here: dropping unwritten events would hole a log. What waits is
        # bounded by what the runs make during one store call (a failing call fails fast).
        self._pending: dict[str, RunBatch] = {}
        self._writing: dict[str, asyncio.Future[None]] = {}  # run id -> the write holding it
        self._closing: set[str] = set()  # runs whose end takes their rest: not flushed here
        self._flusher: asyncio.Task[None] | None = None

    def add(self, run_id: str, kind: RunKind, event: StoredEvent) -> None:
        batch = self._pending.get(run_id)
        if batch is None:
            batch = self._pending[run_id] = RunBatch(run_id, kind, [])
        batch.events.append(event)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="run-log-writer")

    async def take_rest(self, run_id: str) -> list[StoredEvent]:
        """What the run handed over and no write has taken, after the write in flight with
        its events (if any) is done; from then on no flush writes for it."""
        self._closing.add(run_id)
        try:
            while (writing := self._writing.get(run_id)) is not None:
                await asyncio.shield(writing)
            batch = self._pending.pop(run_id, None)
        finally:
            self._closing.discard(run_id)
        return batch.events if batch is not None else []

    async def _flush(self) -> None:
        try:
            while self._pending:
                # Gather what the runs make meanwhile into one call.
                await asyncio.sleep(FLUSH_DELAY_SECONDS)
                batches = [b for b in self._pending.values() if b.run_id not in self._closing]
                if not batches:
                    return  # only closing runs wait: their ends write them
                for batch in batches:
                    del self._pending[batch.run_id]
                await self._write(batches)
        finally:
            self._flusher = None

    async def _write(self, batches: list[RunBatch]) -> None:
        done = asyncio.get_running_loop().create_future()
        for batch in batches:
            self._writing[batch.run_id] = done
        try:
            outcomes = await self._store.append_batches(batches)
        except Exception as exc:  # the runs and local readers go on without the log
            outcomes = [exc] * len(batches)
        finally:
            for batch in batches:
                if self._writing.get(batch.run_id) is done:
                    del self._writing[batch.run_id]
            done.set_result(None)
        for batch, outcome in zip(batches, outcomes, strict=True):
            if outcome is not None:
                report_failure(batch.run_id, len(batch.events), outcome)


def report_failure(run_id: str, count: int, exc: BaseException) -> None:
    metrics.RUN_LOG_WRITE_FAILURES.inc(count)
    log.warning("run_log_write_failed", run_id=run_id, events=count, error=type(exc).__name__)


class RunLogWriter:
    """One run's side of the batcher."""

    def __init__(self, batcher: RunLogBatcher, run_id: str, *, kind: RunKind) -> None:
        self._batcher = batcher
        self._kind = kind  # its retention
        self._run_id = run_id
        self._closed = False

    def add(self, event: StoredEvent) -> None:
        if not self._closed:
            self._batcher.add(self._run_id, self._kind, event)

    def abandon(self) -> None:
        """Log nothing more (the run is handed back for another worker to redo): what was
        added is still written, the ending of this attempt is not."""
        self._closed = True

    async def take_rest(self) -> list[StoredEvent]:
        """Close the writer and hand back what it has not written yet (after the write in
        flight, if any): the run's end writes them with its record, in one call."""
        self._closed = True
        return await self._batcher.take_rest(self._run_id)

    def failed(self, events: list[StoredEvent], exc: Exception) -> None:
        report_failure(self._run_id, len(events), exc)

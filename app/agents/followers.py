"""Following a run's events from any process: history first, then live, resumable by seq.

A reader is a cursor (the last seq it has). It reads from a feed (app/agents/feed.py): the
run's own when this process runs it, else a tail that this process keeps of the run's log, one
per run whatever the number of readers here. A reader the feed has left behind reads from the
log until it catches up; runs of token events it reads that way are coalesced into one (the
text joined, the id of the last), so a reader that is behind catches up in fewer frames and
loses no text. Events no longer in the log are announced with ``events_missed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog
from pydantic import BaseModel

from app.agents import metrics
from app.agents.events import TokenEvent
from app.agents.feed import LoggedEvent, RunFeed
from app.core.lifecycle import raise_if_cancelling
from app.store.run_records import RunRecord
from app.store.run_store import RunStore

log = structlog.get_logger(__name__)

IDLE_CHECK_SECONDS = 1.0  # how often an idle tail checks that its run still lives
LOG_BATCH = 100  # catching up from the log: what a reader holds while its socket drains
COALESCE_MAX_BYTES = 64 * 1024  # the most token JSON merged into one frame


class EventsMissed(BaseModel):
    """Told to a follower whose resume point is older than the retained events."""

    type: Literal["events_missed"] = "events_missed"
    from_seq: int
    to_seq: int
    run: RunRecord | None = None  # the record now, since the missed events cannot be replayed
    task: RunRecord | None = None  # the same record, under the name task streams always used


FollowItem = LoggedEvent | EventsMissed
# Given a record that is not finished, ends it when no process runs it any more.
Reaper = Callable[[RunRecord], Awaitable[None]]


@dataclass
class _Tail:
    feed: RunFeed
    readers: int = 1
    task: asyncio.Task[None] | None = field(default=None)


class RunFollowers:
    def __init__(
        self,
        store: RunStore,
        *,
        local_feed: Callable[[str], RunFeed | None],
        reap: Reaper,
    ) -> None:
        self._store = store
        self._local_feed = local_feed
        self._reap = reap
        self._tails: dict[str, _Tail] = {}

    async def follow(
        self, run_id: str, *, after: int, feed: RunFeed | None = None
    ) -> AsyncIterator[FollowItem]:
        """Every event after ``after``, then live ones, ending after the terminal event (or
        when the run's record says it ended). ``feed``: the run's own, for the reader that
        started it (the run may end before this generator first runs)."""
        batches = self.follow_batches(run_id, after=after, feed=feed)
        try:
            async for batch in batches:
                for item in batch:
                    yield item
        finally:
            await batches.aclose()

    async def follow_batches(
        self, run_id: str, *, after: int, feed: RunFeed | None = None
    ) -> AsyncGenerator[list[FollowItem], None]:
        """``follow``, as the batches that were ready together (a burst of tokens is one):
        a transport writes each in one go."""
        feed, detach = (feed, _stay) if feed is not None else self._attach(run_id, after)
        try:
            while True:
                live = feed.after(after)
                batch: Sequence[FollowItem]
                if live is None:  # left behind by the feed: read the log
                    metrics.RUN_READERS_BEHIND.inc()
                    batch = await self._from_log(run_id, after, feed)
                elif not live:
                    if feed.ended:
                        return
                    await feed.wait(after)
                    continue
                else:
                    batch = live
                ready: list[FollowItem] = []
                for item in batch:
                    if isinstance(item, LoggedEvent) and item.first_seq > after + 1:
                        # A hole (a log write that failed): say so rather than skip it.
                        ready.append(await self._missed(run_id, after + 1, item.first_seq - 1))
                    ready.append(item)
                    after = item.to_seq if isinstance(item, EventsMissed) else item.seq
                    if isinstance(item, LoggedEvent) and item.terminal:
                        yield ready
                        return
                yield ready
        finally:
            detach()

    async def _missed(self, run_id: str, first: int, last: int) -> EventsMissed:
        record = await self._store.get(run_id)
        return EventsMissed(from_seq=first, to_seq=last, **self._record_fields(record))

    async def _from_log(self, run_id: str, after: int, feed: RunFeed) -> list[FollowItem]:
        """One batch from the log after ``after``, coalesced; or the notice of a gap. The store
        away, the reader waits for it as a tail does (its stream stays open, nothing lost)."""
        backoff = 0.1
        while True:
            try:
                return await self._read_log(run_id, after, feed)
            except Exception as exc:
                raise_if_cancelling()
                log.warning("run_log_read_failed", run_id=run_id, error=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _read_log(self, run_id: str, after: int, feed: RunFeed) -> list[FollowItem]:
        stored = await self._store.read_events(run_id, after=after, limit=LOG_BATCH)
        first = stored[0].seq if stored else feed.first_seq
        if first > after + 1:  # trimmed away, or never written (the store was down)
            return [await self._missed(run_id, after + 1, first - 1)]
        return list(coalesce([LoggedEvent.from_stored(s) for s in stored]))

    @staticmethod
    def _record_fields(record: RunRecord | None) -> dict[str, RunRecord | None]:
        if record is not None and record.kind == "task":
            return {"run": record, "task": record}
        return {"run": record}

    # -- feeds -------------------------------------------------------------------------------
    def _attach(self, run_id: str, after: int) -> tuple[RunFeed, Callable[[], None]]:
        local = self._local_feed(run_id)
        if local is not None:
            return local, _stay
        tail = self._tails.get(run_id)
        if tail is None or tail.task is None or tail.task.done():
            tail = _Tail(RunFeed(after=after))
            tail.task = asyncio.create_task(self._tail(run_id, tail.feed), name=f"tail-{run_id}")
            self._tails[run_id] = tail
        else:
            tail.readers += 1

        def detach() -> None:
            tail.readers -= 1
            if tail.readers == 0:
                if self._tails.get(run_id) is tail:
                    del self._tails[run_id]
                if tail.task is not None:
                    tail.task.cancel()

        return tail.feed, detach

    async def _tail(self, run_id: str, feed: RunFeed) -> None:
        """Copy the run's log into ``feed`` until its terminal event (or its record's end)."""
        after, backoff = feed.last_seq, 0.1
        try:
            while True:
                try:
                    batch = await self._store.wait_events(
                        run_id, after=after, wait_seconds=IDLE_CHECK_SECONDS
                    )
                    for stored in batch:
                        item = LoggedEvent.from_stored(stored)
                        feed.push(item)
                        after = item.seq
                        if item.terminal:
                            return
                    if not batch and await self._ended(run_id, after, feed):
                        return
                    backoff = 0.1
                except Exception as exc:  # the store is away: retry; readers keep waiting
                    raise_if_cancelling()
                    log.warning("run_tail_failed", run_id=run_id, error=type(exc).__name__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            feed.close()

    async def _ended(self, run_id: str, after: int, feed: RunFeed) -> bool:
        record = await self._store.get(run_id)
        if record is not None and not record.finished:
            await self._reap(record)  # a run whose process died gets its end written
            return False
        # Finished (or gone): push what was written between the wait and the read, then stop.
        while rest := await self._store.read_events(run_id, after=after, limit=LOG_BATCH):
            for stored in rest:
                feed.push(LoggedEvent.from_stored(stored))
            after = rest[-1].seq
        return True


def _token_text(item: LoggedEvent) -> str:
    event = item.event
    return event.text if isinstance(event, TokenEvent) else ""


def _stay() -> None:
    """Detaching from a run's own feed: nothing to release."""


def item_json(item: FollowItem) -> str:
    """The JSON object a transport sends for one followed item."""
    return item.model_dump_json() if isinstance(item, EventsMissed) else item.json


def coalesce(items: list[LoggedEvent]) -> list[LoggedEvent]:
    """Runs of consecutive token events merged into one each (text joined, last id), up to
    COALESCE_MAX_BYTES of them per merged event."""
    out: list[LoggedEvent] = []
    run: list[LoggedEvent] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            last = run[-1].event
            text = "".join(_token_text(item) for item in run)
            merged = LoggedEvent.of(TokenEvent(seq=last.seq, ts=last.ts, text=text))
            merged.first_seq = run[0].seq
            out.append(merged)
        run.clear()

    size = 0
    for item in items:
        if item.type != "token":
            flush()
            out.append(item)
            continue
        run.append(item)
        size += len(item.json)
        if size >= COALESCE_MAX_BYTES:  # a frame (and what a slow socket buffers) stays small
            flush()
            size = 0
    flush()
    return out

"""Where a response's events come from, and the loop that turns them into Responses events.

A response started here follows its run's feed (RunService.follow_batches with the run). Any
other (a background task, an answer to a question, GET, a resumed stream) reads the run's
log as it was written, token by token, from the start of the response's stretch, then
follows it live: the encoder sees the same events in the same order each time, so the
sequence numbers a resumed stream skips are the ones the client already has.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from app.agents.feed import LoggedEvent
from app.agents.followers import FollowItem
from app.agents.run import Run
from app.agents.service import RunService
from app.protocols.openai.responses_encoder import Json, ResponseEncoder

LOG_PAGE = 500

Batches = AsyncGenerator[list[FollowItem], None]


async def logged_pages(runs: RunService, run_id: str, *, after: int) -> Batches:
    """The run's log after ``after`` as written (never merged), a page at a time, to its end
    for now."""
    while True:
        stored = await runs.store.read_events(run_id, after=after, limit=LOG_PAGE)
        if not stored:
            return
        page: list[FollowItem] = [LoggedEvent.from_stored(item) for item in stored]
        yield page
        after = stored[-1].seq


async def logged_then_live(runs: RunService, run_id: str, *, after: int) -> Batches:
    """The log from ``after``, then the run's live events, until its terminal event."""
    async for page in logged_pages(runs, run_id, after=after):
        yield page
        after = page[-1].seq if isinstance(page[-1], LoggedEvent) else after
        if isinstance(page[-1], LoggedEvent) and page[-1].terminal:
            return
    live = runs.follow_batches(run_id, after=after)
    try:
        async for batch in live:
            yield batch
    finally:
        await live.aclose()


def started_events(runs: RunService, run: Run) -> Batches:
    """The events of a run this process just started, from its first."""
    return runs.follow_batches(run.run_id, after=0, started=run)


async def encode(encoder: ResponseEncoder, batches: Batches) -> AsyncIterator[list[Json]]:
    """The Responses events of each batch, until the response's stretch of the run ends
    (its question, or the run's end) or the events do."""
    try:
        async for batch in batches:
            out: list[Json] = []
            for item in batch:
                if isinstance(item, LoggedEvent):  # events_missed: nothing to show for it
                    out += encoder.feed(item)
                if encoder.ended:
                    break
            if out:
                yield out
            if encoder.ended:
                return
    finally:
        await batches.aclose()


async def run_to_end(encoder: ResponseEncoder, batches: Batches) -> ResponseEncoder:
    """Feed the encoder everything ``batches`` has for it; the encoder says how it stands."""
    async for _ in encode(encoder, batches):
        pass
    return encoder

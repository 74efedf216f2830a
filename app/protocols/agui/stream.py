"""AG-UI frames of one segment of a run, and the replay that lets a stream start mid-run.

Frames are AG-UI's SSE encoding (``data: <event JSON>``, ag_ui.encoder.EventEncoder). The
frames made from one of our events are written together and the last of them carries
``id: <seq>``, our run log's sequence number, so a client's Last-Event-ID names a point in the
run's log: a reconnect (or a resume) replays the log up to it to rebuild the mapper's state
(open message, open step), then follows the run after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder

from app.agents.feed import LoggedEvent
from app.agents.followers import EventsMissed, FollowItem
from app.agents.service import RunService
from app.protocols.agui.event_mapping import AguiEvents

ENCODER = EventEncoder()
LOG_PAGE = 100
# The run log is written in batches, a moment after the feed a client read: a resume or a
# reconnect waits at most this long for the log to reach the point it starts from.
LOG_CATCH_UP_SECONDS = 3.0


def encode(events: Sequence[BaseEvent], seq: int | None = None) -> bytes:
    """The events' frames, the last one with ``id: seq``."""
    frames = [ENCODER.encode(event) for event in events]
    if frames and seq is not None:
        frames[-1] = f"{frames[-1][:-1]}id: {seq}\n\n"
    return "".join(frames).encode()


def _seq(item: FollowItem) -> int:
    return item.to_seq if isinstance(item, EventsMissed) else item.seq


async def segment_frames(
    batches: AsyncGenerator[list[FollowItem], None],
    mapper: AguiEvents,
    *,
    first: bytes = b"",
) -> AsyncGenerator[bytes, None]:
    """``first``, then the mapped frames of each batch, until the segment ends (the run
    asked for input, or ended)."""
    try:
        if first:
            yield first
        async for batch in batches:
            chunk: list[bytes] = []
            for item in batch:
                chunk.append(encode(mapper.map(item), _seq(item)))
                if mapper.ended:
                    yield b"".join(chunk)
                    return
            yield b"".join(chunk)
    finally:
        await batches.aclose()


async def single(frame: bytes) -> AsyncGenerator[bytes, None]:
    yield frame


class Replay:
    """Feeds a run's logged events to a mapper, its output dropped, up to a point."""

    def __init__(self, runs: RunService, mapper: AguiEvents, run_id: str) -> None:
        self._runs = runs
        self._mapper = mapper
        self._run_id = run_id
        self.seq = 0  # the last event fed
        self.run_ended = False  # the terminal event was fed

    async def _page(self) -> list[LoggedEvent]:
        stored = await self._runs.store.read_events(self._run_id, after=self.seq, limit=LOG_PAGE)
        return [LoggedEvent.from_stored(s) for s in stored]

    async def _feed_until(self, done: str | int) -> bool:
        """Feed events until the input request ``done`` (an id) was fed, or seq ``done``;
        False when the log does not reach it within LOG_CATCH_UP_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOG_CATCH_UP_SECONDS
        while isinstance(done, str) or self.seq < done:
            page = await self._page()
            if not page:
                if self.run_ended or loop.time() >= deadline:
                    return False
                await asyncio.sleep(0.05)
                continue
            for item in page:
                if isinstance(done, int) and item.seq > done:
                    return True
                self._mapper.map(item)
                self.seq = item.seq
                self.run_ended = self.run_ended or item.terminal
                event = item.event if item.type == "input_required" else None
                if event is not None and getattr(event, "request_id", None) == done:
                    return True
        return True

    async def until_seq(self, seq: int) -> bool:
        return seq <= 0 or await self._feed_until(seq)

    async def until_question(self, request_id: str) -> bool:
        """Up to and including the ``input_required`` event asking ``request_id``."""
        return await self._feed_until(request_id)

"""Server-sent events: the frame parser, and event streams that reconnect by themselves.

A stream is followed until its run's final event (``run_completed`` or ``error``). When the
connection breaks, the server restarts (an ``event: shutdown`` frame) or the body ends
early, the stream reconnects with backoff to the resumable route (``GET /v1/runs/{id}/events``
or ``/v1/tasks/{id}/events``) sending ``Last-Event-ID``: the server replays exactly the
frames after it, or says ``events_missed`` first when those are no longer kept.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field

import httpx

from agent_service_client.errors import ApiError, StreamError
from agent_service_client.events import EventsMissed, StreamItem, is_terminal, parse_event


@dataclass
class Frame:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


@dataclass
class SSEParser:
    """The WHATWG event-stream rules, one line at a time (line ends already removed)."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    _retry: int | None = None
    _seen: bool = False

    def feed(self, line: str) -> Frame | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event, self._seen = value, True
        elif name == "data":
            self._data.append(value)
            self._seen = True
        elif name == "id" and "\0" not in value:
            self._id, self._seen = value, True
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry, self._seen = int(value), True
        return None

    def _dispatch(self) -> Frame | None:
        if not self._seen:
            return None
        frame = Frame(self._event or "message", "\n".join(self._data), self._id, self._retry)
        self._event, self._data, self._id, self._retry, self._seen = "", [], None, None, False
        return frame


@dataclass
class Backoff:
    """Delays between reconnection attempts: exponential with jitter, reset by progress."""

    initial: float = 0.5
    maximum: float = 10.0
    max_attempts: int = 8  # in a row without an event in between

    def delay(self, attempt: int, hint_ms: int | None = None) -> float:
        if hint_ms is not None and attempt == 1:
            return hint_ms / 1000  # the server said when (shutdown frames: retry: 1000)
        ceiling = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


class _Follow:
    """What the sync and async streams share: frames in, items out, where to resume."""

    def __init__(self, after: int, backoff: Backoff) -> None:
        self.after = after
        self.backoff = backoff
        self.failures = 0
        self.hint_ms: int | None = None
        self.done = False
        self.missed: list[EventsMissed] = []

    def item(self, frame: Frame) -> StreamItem | None:
        """The frame's event (None for a keep-alive, a shutdown or an unknown type)."""
        if frame.event == "shutdown":
            self.hint_ms = frame.retry
            return None
        item = parse_event(frame.event, frame.data)
        if frame.id is not None and frame.id.isdigit():
            self.after = int(frame.id)
        if isinstance(item, EventsMissed):
            self.after = item.to_seq
            self.missed.append(item)
        if item is not None:
            self.failures = 0
            self.hint_ms = None
            self.done = is_terminal(item)
        return item

    def failed(self, exc: Exception | None) -> float:
        """Seconds to wait before reconnecting; raises when it should not (a 4xx, or too
        many attempts in a row)."""
        if isinstance(exc, ApiError) and exc.status not in (429, 502, 503, 504):
            raise exc
        self.failures += 1
        if self.failures > self.backoff.max_attempts:
            raise StreamError(f"gave up after {self.backoff.max_attempts} reconnections") from exc
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff.delay(self.failures, self.hint_ms)


Opener = Callable[[int], AbstractContextManager[httpx.Response]]
AsyncOpener = Callable[[int], AbstractAsyncContextManager[httpx.Response]]


def _always() -> bool:
    return True


def follow(
    open_stream: Opener, *, after: int, backoff: Backoff, resumable: Callable[[], bool] = _always
) -> Generator[StreamItem, None, None]:
    """Every item after ``after`` until the final event, reconnecting as needed (once
    ``resumable()``: a run whose id is not known yet cannot be resumed)."""
    state = _Follow(after, backoff)
    while True:
        error: Exception | None = None
        try:
            with open_stream(state.after) as response:
                parser = SSEParser()
                for line in response.iter_lines():
                    frame = parser.feed(line)
                    item = state.item(frame) if frame is not None else None
                    if item is not None:
                        yield item
                        if state.done:
                            return
        except (httpx.TransportError, ApiError) as exc:
            if not resumable():
                raise
            error = exc
        time.sleep(state.failed(error))


async def afollow(
    open_stream: AsyncOpener,
    *,
    after: int,
    backoff: Backoff,
    resumable: Callable[[], bool] = _always,
) -> AsyncGenerator[StreamItem, None]:
    state = _Follow(after, backoff)
    while True:
        error: Exception | None = None
        try:
            async with open_stream(state.after) as response:
                parser = SSEParser()
                async for line in response.aiter_lines():
                    frame = parser.feed(line)
                    item = state.item(frame) if frame is not None else None
                    if item is not None:
                        yield item
                        if state.done:
                            return
        except (httpx.TransportError, ApiError) as exc:
            if not resumable():
                raise
            error = exc
        await asyncio.sleep(state.failed(error))

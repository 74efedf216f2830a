"""Server-sent events as a pure ASGI response that notices a departed client at once.

Starlette's StreamingResponse only learns of a disconnect when a write fails, which may be
a long LLM latency away; the run (and its upstream LLM call) must stop within a second. So
this response listens for ``http.disconnect`` while it streams and cancels the producer the
moment the client goes. An event's frame is built once and shared by all its readers; notices
use FastAPI's own SSE encoder. Frames are written as they come, and a keep-alive comment from
a timer task keeps idle connections (and proxies) open.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import anyio
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.agents import metrics
from app.agents.followers import EventsMissed, FollowItem
from app.core.errors import AppError
from app.core.lifecycle import shutdown
from app.observability.metrics import labelled

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
}

# One server-sent event as an SSE parser yields it (OpenAPI 3.2's itemSchema for
# text/event-stream): the protocol surfaces document their streams' events this way.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string", "description": "The event's JSON (or [DONE])."},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


def encode_item(item: FollowItem) -> bytes:
    """A followed event's frame, built once and shared by every reader of the run (the JSON
    is one line, so the frame is format_sse_event's without its per-line work)."""
    if isinstance(item, EventsMissed):
        return format_sse_event(data_str=item.model_dump_json(), event=item.type)
    if item.wire is None:
        item.wire = f"event: {item.type}\ndata: {item.json}\nid: {item.seq}\n\n".encode()
    return item.wire


# A burst (a cached answer's tokens) goes out as one write, in chunks of about this size.
WRITE_BYTES = 64 * 1024


async def follow_frames(
    batches: AsyncGenerator[list[FollowItem], None],
) -> AsyncGenerator[bytes, None]:
    """The frames of each batch of events that were ready together, joined (``joined``)."""
    try:
        async for batch in batches:
            for write in joined([encode_item(item) for item in batch]):
                yield write
    finally:
        await batches.aclose()


def joined(frames: list[bytes]) -> Iterator[bytes]:
    """Frames in writes of about WRITE_BYTES: one pass through the middleware's send wrappers
    and one socket write for a batch, instead of one each."""
    chunk: list[bytes] = []
    size = 0
    for frame in frames:
        chunk.append(frame)
        size += len(frame)
        if size >= WRITE_BYTES:
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)


# ASCII digits only, and few enough for any sequence number: str.isdigit() also accepts '²'
# and '１２', which int() then refuses or reads as 12, and 5,000 digits overflow int().
_EVENT_ID = re.compile(r"[0-9]{1,18}")


class InvalidEventId(AppError):
    status, code = 400, "invalid_last_event_id"


def parse_event_id(value: str | None, *, source: str) -> int | None:
    """A resume point from ``Last-Event-ID`` or its query twin; None when absent or empty
    (EventSource sends none before its first id). Anything but ASCII digits is 400."""
    if value is None or not value.strip(" \t"):
        return None
    text = value.strip(" \t")
    if _EVENT_ID.fullmatch(text) is None:
        raise InvalidEventId(
            f"{source} must be an event id: 1 to 18 ASCII digits (the `id` of a frame)."
        )
    return int(text)


SHUTDOWN_FRAME = format_sse_event(
    data_str=json.dumps(
        {
            "type": "shutdown",
            "code": "server_shutdown",
            "message": "The server is restarting; reconnect to continue.",
        }
    ),
    event="shutdown",
    retry=1000,
)


class _OpenStreams:
    """The process's open streams, told together when the server stops: one waiter for all
    of them, not a task per stream (a thousand open streams would be a thousand tasks)."""

    def __init__(self) -> None:
        self._stops: dict[int, tuple[float, Callable[[], None]]] = {}
        self._waiter: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, key: int, grace: float, stop: Callable[[], None]) -> None:
        """``stop`` is called ``grace`` seconds after shutdown starts, if still open."""
        self._stops[key] = (grace, stop)
        loop = asyncio.get_running_loop()
        if shutdown.triggered:  # opened while stopping: its grace counts from now
            loop.call_later(grace, self._stop, key)
        elif self._waiter is None or self._waiter.done() or self._loop is not loop:
            self._loop = loop
            self._waiter = loop.create_task(self._wait(), name="sse-shutdown")

    def discard(self, key: int) -> None:
        self._stops.pop(key, None)

    async def _wait(self) -> None:
        await shutdown.wait()
        loop = asyncio.get_running_loop()
        for key, (grace, _) in list(self._stops.items()):
            loop.call_later(grace, self._stop, key)  # let each stream finish if it can

    def _stop(self, key: int) -> None:
        entry = self._stops.pop(key, None)
        if entry is not None:
            entry[1]()


_open_streams = _OpenStreams()


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse (so FastAPI returns it as is) with its own send loop."""

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        keepalive_seconds: float,
        shutdown_grace_seconds: float,
        on_disconnect: Callable[[str], None],
        headers: dict[str, str] | None = None,
        shutdown_frame: bytes = SHUTDOWN_FRAME,  # a protocol's own (OpenAI: an error object)
    ) -> None:
        super().__init__(
            frames, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
        )
        self._frames = frames
        self._shutdown_frame = shutdown_frame
        self._keepalive = keepalive_seconds
        self._shutdown_grace = shutdown_grace_seconds
        self._on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        labelled(metrics.ACTIVE_STREAMS, "sse").inc()
        # Frames are written as they come. One task per stream listens for the client's
        # departure; the keep-alive comment is a timer and shutdown one process-wide waiter
        # (_OpenStreams), so an idle stream costs no task of its own for either. No per-frame
        # timeout or channel: with a thousand open streams the cost of each frame is what
        # bounds delivery latency.
        stream = _SendLoop(send, receive, self._keepalive, self._on_disconnect)
        watcher = stream.loop.create_task(stream.watch_disconnect())
        watcher.add_done_callback(stream.watched)
        try:
            with stream.body_scope:
                _open_streams.add(id(self), self._shutdown_grace, stream.stop_for_shutdown)
                stream.timer = stream.loop.call_later(self._keepalive, stream.keep_alive)
                try:
                    async for frame in self._frames:
                        await stream.write(frame)
                finally:
                    _open_streams.discard(id(self))
                    stream.stop_timers()
                    await self._frames.aclose()
            if stream.server_stopping and not stream.client_gone:
                await send(
                    {"type": "http.response.body", "body": self._shutdown_frame, "more_body": True}
                )
        except* OSError:  # the socket broke mid-write (anyio groups wrap errors)
            stream.client_gone = True
            self._on_disconnect("client_disconnected")
        finally:
            watcher.cancel()
            labelled(metrics.ACTIVE_STREAMS, "sse").dec()
        if not stream.client_gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class _SendLoop:
    """One open stream's writes, keep-alive and departure. One slotted object whose bound
    methods are the callbacks: as closures over the send loop's variables they were seven
    functions and as many cells, about 1.4 KB an open stream."""

    __slots__ = (
        "_keepalive",
        "_on_disconnect",
        "_receive",
        "_send",
        "body_scope",
        "client_gone",
        "last_write",
        "loop",
        "pinging",
        "server_stopping",
        "timer",
        "writing",
    )

    def __init__(
        self,
        send: Send,
        receive: Receive,
        keepalive_seconds: float,
        on_disconnect: Callable[[str], None],
    ) -> None:
        self._send = send
        self._receive = receive
        self._keepalive = keepalive_seconds
        self._on_disconnect = on_disconnect
        self.loop = asyncio.get_running_loop()
        self.writing = self.client_gone = self.server_stopping = False
        self.last_write = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        self.pinging: asyncio.Task[None] | None = None
        # The disconnect watcher is a plain task, cancelled when the stream ends, and the
        # body runs in a cancel scope (gone, shutdown): with an anyio task group, the
        # watcher's cancellation left a reference cycle behind (anyio's task_done frame holds
        # the CancelledError whose traceback holds that frame), and with it everything the
        # stream had held (its run, its events) waited for the garbage collector.
        self.body_scope = anyio.CancelScope()

    async def write(self, body: bytes) -> None:
        self.writing = True
        try:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self.writing = False
            self.last_write = time.monotonic()

    def gone(self) -> None:
        self.client_gone = True
        self._on_disconnect("client_disconnected")
        self.body_scope.cancel()

    async def watch_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone()

    def watched(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.gone()  # receive() failed: the connection is no use any more

    def stop_for_shutdown(self) -> None:
        self.server_stopping = True
        self._on_disconnect("shutdown")
        self.body_scope.cancel()

    def pinged(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and isinstance(task.exception(), OSError):
            self.gone()  # the socket broke under the keep-alive

    def keep_alive(self) -> None:
        wait = self._keepalive - (time.monotonic() - self.last_write)
        if self.writing:  # a write is stuck on a slow reader: look again later
            wait = self._keepalive
        elif wait <= 0:
            self.pinging = self.loop.create_task(self.write(b": keep-alive\n\n"))
            self.pinging.add_done_callback(self.pinged)
            wait = self._keepalive
        self.timer = self.loop.call_later(wait, self.keep_alive)

    def stop_timers(self) -> None:
        # The timer holds keep_alive, which holds this object, which holds the timer: a
        # cycle that would keep the stream's run and events for the collector.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pinging is not None and not self.pinging.done():
            self.pinging.cancel()
        self.pinging = None

"""Process shutdown as an awaitable signal, so open streams can end cleanly on SIGTERM.

uvicorn stops accepting on SIGTERM and then waits for open connections, but the app is not
told: a stream would run until the grace period ends and then be cut without a word. Our
server classes (app/entrypoints/server.py) call ``shutdown.trigger()`` from uvicorn's exit handler;
streams then finish or, after SHUTDOWN_STREAM_GRACE_SECONDS, send a final ``shutdown`` event
telling the client to reconnect; readiness turns 503 so no new traffic arrives.
"""

from __future__ import annotations

import asyncio
from typing import Any


class ShutdownSignal:
    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.triggered = False

    def _ensure(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._event = asyncio.Event()
            self._loop = loop
            if self.triggered:
                self._event.set()
        return self._event

    def trigger(self) -> None:
        """Safe to call from a signal handler or another thread."""
        self.triggered = True
        if self._loop is not None and self._event is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        await self._ensure().wait()


shutdown = ShutdownSignal()


def raise_if_cancelling() -> None:
    """Call in a broad ``except Exception`` of a long-lived loop.

    Some client libraries turn a cancellation that lands mid-I/O into their own error (a
    connection error); a retry loop that swallows it would never stop, and shutdown hangs.
    The task still remembers it was asked to cancel, so honour that here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[Any] | None, *, within_seconds: float = 2.0) -> None:
    """Cancel a background task and wait for it, without ever hanging shutdown.

    A client library may swallow a cancellation that lands mid-I/O and retry the read (seen
    with redis-py's pub/sub after a Redis restart), leaving the task waiting for data that
    never comes. So cancel again each time the wait times out, a few times, then give up:
    the loop's own end collects it.
    """
    if task is None or task.done():
        return
    for _ in range(4):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=within_seconds / 4)
        if done:
            return

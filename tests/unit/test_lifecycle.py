"""stop_task: shutdown never hangs on a background task that swallows a cancellation.

redis-py's pub/sub turned a cancellation landing mid-read into a connection error and retried
the read after a Redis restart, so a listener stayed blocked and the lifespan's shutdown
waited forever (seen as a 30 s lifespan timeout in the suite under load)."""

from __future__ import annotations

import asyncio
import time

from app.core.lifecycle import stop_task


async def _swallows_cancellations(times: int, reached: asyncio.Event) -> None:
    for _ in range(times):
        try:
            reached.set()
            await asyncio.Event().wait()  # blocked "in a read" that never returns
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # what the library did
    await asyncio.Event().wait()


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    reached = asyncio.Event()
    task = asyncio.create_task(_swallows_cancellations(2, reached))
    await reached.wait()
    started = time.monotonic()
    await stop_task(task, within_seconds=2.0)
    assert task.cancelled()
    assert time.monotonic() - started < 2.0


async def test_stop_task_gives_up_in_bounded_time() -> None:
    reached = asyncio.Event()
    task = asyncio.create_task(_swallows_cancellations(6, reached))  # more than stop_task tries
    await reached.wait()
    started = time.monotonic()
    await stop_task(task, within_seconds=0.4)
    assert time.monotonic() - started < 1.0  # never waits past its bound
    assert not task.done()
    while not task.done():  # this test's own cleanup: the loop must not keep it
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


async def test_nothing_to_stop() -> None:
    await stop_task(None)
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await stop_task(done)

"""A reader catching up from a run's log in Redis while Redis stops answering for a while:
its stream waits and then goes on, nothing lost (it used to end with the error)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from app.agents.events import RunCompleted, RunStarted, TokenEvent
from app.agents.feed import LoggedEvent, RunFeed
from app.agents.followers import RunFollowers
from app.store.redis_client import build_redis
from app.store.run_records import RunRecord
from app.store.run_store_redis import RedisRunStore
from tests.conftest import SettingsFactory
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.xdist_group("run_readers_redis")
RUN_ID = "b" * 32


@pytest.fixture
def server(module_redis: RedisServer) -> RedisServer:
    return module_redis


async def _nothing_lost(record: RunRecord) -> None:
    return None


async def test_a_reader_behind_the_ring_waits_out_a_paused_redis(
    server: RedisServer, make_settings: SettingsFactory
) -> None:
    settings = make_settings(REDIS_URL=server.url)
    redis, blocking = build_redis(settings), build_redis(settings, blocking=True)
    store = RedisRunStore(
        redis,
        blocking=blocking,
        prefix=settings.REDIS_KEY_PREFIX,
        retention_seconds=60,
        run_retention_seconds=60,
        events_max=1000,
    )
    events = [
        LoggedEvent.of(RunStarted(seq=1, run_id=RUN_ID, agent="chat")),
        *(LoggedEvent.of(TokenEvent(seq=seq, text=f"t{seq} ")) for seq in range(2, 40)),
        LoggedEvent.of(RunCompleted(seq=40, output="done")),
    ]
    await store.append_events(RUN_ID, [item.stored() for item in events])
    feed = RunFeed(capacity=4)  # the ring kept only the last events: the rest is in the log
    for item in events:
        feed.push(item)
    followers = RunFollowers(store, local_feed=lambda _: feed, reap=_nothing_lost)
    pid = int((await redis.info("server"))["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        reading = asyncio.create_task(_texts(followers))
        await asyncio.sleep(1.0)  # several timed-out reads and retries
        assert not reading.done()
    finally:
        os.kill(pid, signal.SIGCONT)
    texts, last = await asyncio.wait_for(reading, timeout=20)
    assert texts == "".join(f"t{seq} " for seq in range(2, 40))
    assert last == 40
    await redis.aclose()
    await blocking.aclose()


async def _texts(followers: RunFollowers) -> tuple[str, int]:
    logged = [
        item async for item in followers.follow(RUN_ID, after=0) if isinstance(item, LoggedEvent)
    ]
    text = "".join(getattr(item.event, "text", "") for item in logged if item.type == "token")
    return text, logged[-1].seq

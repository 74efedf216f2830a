"""Where a live run is held, against a real Redis: a record names its holder while the holder's
heartbeat lives; a run without a record is announced under its own key."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from app.agents.live_runs import LiveRunRegistry
from app.store.run_store_redis import RunKeys


async def _beating(registry: LiveRunRegistry, raw_redis: Redis, prefix: str) -> None:
    registry.start()
    deadline = time.monotonic() + 5
    while not await raw_redis.exists(f"{prefix}runs:holder:{registry.holder}"):
        assert time.monotonic() < deadline, "no heartbeat"
        await asyncio.sleep(0.01)


async def test_a_record_names_its_holder_while_the_holder_beats(
    raw_redis: Redis, key_prefix: str
) -> None:
    registry = LiveRunRegistry(raw_redis, prefix=key_prefix, holder="proc-a", ttl_seconds=30)
    await _beating(registry, raw_redis, key_prefix)
    record = RunKeys(key_prefix).record("run-1")
    try:
        await raw_redis.hset(
            record, mapping={"owner": "user:ann", "holder": "proc-a", "status": "running"}
        )
        live = await registry.lookup("run-1")
        assert live is not None and (live.owner, live.holder) == ("user:ann", "proc-a")

        await raw_redis.hset(record, "status", "input_required")
        assert await registry.lookup("run-1") is not None  # waiting for a human: still held

        await raw_redis.hset(record, "status", "completed")
        assert await registry.lookup("run-1") is None  # the record says it ended
        assert await registry.lookup("never-started") is None
    finally:
        await registry.aclose()
    # A holder that stopped (or whose heartbeat expired) holds nothing any more.
    await raw_redis.hset(record, "status", "running")
    assert not await raw_redis.exists(f"{key_prefix}runs:holder:proc-a")
    assert await registry.lookup("run-1") is None


async def test_a_run_without_a_record_is_announced_and_retired(
    raw_redis: Redis, key_prefix: str
) -> None:
    registry = LiveRunRegistry(raw_redis, prefix=key_prefix, holder="proc-b", ttl_seconds=30)
    await _beating(registry, raw_redis, key_prefix)
    try:
        await registry.announce("run-2", "user:bob")
        live = await registry.lookup("run-2")
        assert live is not None and (live.owner, live.holder) == ("user:bob", "proc-b")
        await registry.retire("run-2")
        assert await registry.lookup("run-2") is None
    finally:
        await registry.aclose()

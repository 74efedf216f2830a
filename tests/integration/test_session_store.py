"""The SessionStore contract, run against both backends (memory and a real redis-server)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.llm.types import ChatMessage, ToolCall
from app.store.redis_client import build_redis
from app.store.session_backends import (
    MemorySessionStore,
    RedisSessionStore,
    SessionNotFoundError,
    build_session_store,
)
from app.store.sessions import SessionStore
from tests.conftest import SettingsFactory

StoreFactory = Callable[..., SessionStore]
TTL = 1.0  # seconds; the settings refuse < 60, the backends take any value for tests


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


@pytest.fixture
async def make_store(
    store_backend: dict[str, Any], make_settings: SettingsFactory, key_prefix: str
) -> AsyncIterator[StoreFactory]:
    """Stores of each backend in turn: memory, the single Redis, the cluster."""
    redis = build_redis(make_settings(**store_backend)) if store_backend else None

    def factory(*, ttl_seconds: float = 60, max_messages: int = 50) -> SessionStore:
        if redis is None:
            return MemorySessionStore(max_messages=max_messages, ttl_seconds=ttl_seconds)
        return RedisSessionStore(
            redis, prefix=key_prefix, max_messages=max_messages, ttl_seconds=ttl_seconds
        )

    try:
        yield factory
    finally:
        if redis is not None:
            await redis.aclose()


@pytest.fixture
def store(make_store: StoreFactory) -> SessionStore:
    return make_store()


# --- create, get, list -------------------------------------------------------------------------


async def test_create_then_get(store: SessionStore) -> None:
    created = await store.create(owner="user:alice", agent="echo")
    assert re.fullmatch(r"[0-9a-f]{32}", created.id)
    assert (created.owner, created.agent, created.message_count) == ("user:alice", "echo", 0)
    assert created.created_at.tzinfo is not None
    fetched = await store.get(created.id)
    assert fetched == created
    assert await store.get("0" * 32) is None
    assert (await store.create(owner="user:alice", agent="echo")).id != created.id


async def test_list_is_per_owner_newest_first_with_pagination(store: SessionStore) -> None:
    ids = [(await store.create(owner="user:alice", agent=f"a{i}")).id for i in range(5)]
    await store.create(owner="key:bob", agent="other")
    newest_first = list(reversed(ids))

    items, total = await store.list(owner="user:alice", limit=10, offset=0)
    assert total == 5
    assert [s.id for s in items] == newest_first
    assert all(s.owner == "user:alice" for s in items)

    page, total = await store.list(owner="user:alice", limit=2, offset=1)
    assert (total, [s.id for s in page]) == (5, newest_first[1:3])
    page, total = await store.list(owner="user:alice", limit=2, offset=4)
    assert (total, [s.id for s in page]) == (5, newest_first[4:])
    assert await store.list(owner="user:alice", limit=2, offset=9) == ([], 5)
    assert await store.list(owner="user:nobody", limit=10, offset=0) == ([], 0)


async def test_list_reports_message_counts(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    await store.append(session.id, [user("a"), user("b")])
    items, _ = await store.list(owner="user:alice", limit=10, offset=0)
    assert items[0].message_count == 2


# --- history -----------------------------------------------------------------------------------


async def test_append_and_read_history_oldest_first(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    call = ToolCall(id="c1", name="calc", arguments={"expr": "1+1"})
    history = [
        user("hi"),
        ChatMessage(role="assistant", content=None, tool_calls=[call]),
        ChatMessage(role="tool", content="2", tool_call_id="c1", name="calc"),
        ChatMessage(role="assistant", content="It is 2."),
    ]
    await store.append(session.id, history[:2])
    await store.append(session.id, history[2:])
    assert await store.messages(session.id, limit=10, offset=0) == history
    assert await store.messages(session.id, limit=2, offset=1) == history[1:3]
    assert await store.messages(session.id, limit=10, offset=4) == []
    fetched = await store.get(session.id)
    assert fetched is not None
    assert fetched.message_count == 4
    assert fetched.updated_at > session.updated_at
    assert fetched.created_at == session.created_at


async def test_history_is_trimmed_to_max_messages_oldest_dropped(make_store: StoreFactory) -> None:
    store = make_store(max_messages=5)
    session = await store.create(owner="user:alice", agent="echo")
    await store.append(session.id, [user(str(i)) for i in range(3)])
    await store.append(session.id, [user(str(i)) for i in range(3, 7)])
    kept = await store.messages(session.id, limit=100, offset=0)
    assert [m.content for m in kept] == ["2", "3", "4", "5", "6"]
    await store.append(session.id, [user(f"x{i}") for i in range(8)])  # one batch > max
    kept = await store.messages(session.id, limit=100, offset=0)
    assert [m.content for m in kept] == [f"x{i}" for i in range(3, 8)]
    fetched = await store.get(session.id)
    assert fetched is not None and fetched.message_count == 5


async def test_append_to_a_missing_session_raises(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.append("0" * 32, [user("lost")])
    assert await store.messages("0" * 32, limit=10, offset=0) == []


async def test_concurrent_appends_lose_nothing(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    await asyncio.gather(*(store.append(session.id, [user(str(i))]) for i in range(20)))
    kept = await store.messages(session.id, limit=100, offset=0)
    assert sorted(int(m.content or "") for m in kept) == list(range(20))


# --- expiry ------------------------------------------------------------------------------------


async def test_idle_session_expires_with_its_history(make_store: StoreFactory) -> None:
    store = make_store(ttl_seconds=TTL)
    session = await store.create(owner="user:alice", agent="echo")
    await store.append(session.id, [user("hi")])
    await asyncio.sleep(TTL + 0.3)
    assert await store.get(session.id) is None
    assert await store.messages(session.id, limit=10, offset=0) == []
    assert await store.list(owner="user:alice", limit=10, offset=0) == ([], 0)
    assert await store.delete(session.id) is False
    with pytest.raises(SessionNotFoundError):
        await store.append(session.id, [user("too late")])


async def test_expiry_slides_on_get_and_append(make_store: StoreFactory) -> None:
    store = make_store(ttl_seconds=TTL)
    by_get = await store.create(owner="user:alice", agent="echo")
    by_append = await store.create(owner="user:alice", agent="echo")
    idle = await store.create(owner="user:alice", agent="echo")
    for step in range(3):  # 3 x 0.5 s: well past the first deadline
        await asyncio.sleep(TTL / 2)
        assert await store.get(by_get.id) is not None
        await store.append(by_append.id, [user(str(step))])
    assert await store.get(idle.id) is None
    items, total = await store.list(owner="user:alice", limit=10, offset=0)
    assert total == 2
    assert {s.id for s in items} == {by_get.id, by_append.id}
    assert len(await store.messages(by_append.id, limit=10, offset=0)) == 3
    await asyncio.sleep(TTL + 0.3)
    assert await store.list(owner="user:alice", limit=10, offset=0) == ([], 0)


# --- delete ------------------------------------------------------------------------------------


async def test_delete_removes_session_history_and_lock(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    other = await store.create(owner="user:alice", agent="echo")
    await store.append(session.id, [user("hi")])
    assert await store.acquire_run_lock(session.id, run_id="r1", ttl_seconds=60)
    assert await store.delete(session.id) is True
    assert await store.get(session.id) is None
    assert await store.messages(session.id, limit=10, offset=0) == []
    items, total = await store.list(owner="user:alice", limit=10, offset=0)
    assert (total, [s.id for s in items]) == (1, [other.id])
    assert await store.acquire_run_lock(session.id, run_id="r2", ttl_seconds=60)
    assert await store.delete(session.id) is False


# --- run lock ----------------------------------------------------------------------------------


async def test_run_lock_is_exclusive_and_released_by_its_holder_only(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    other = await store.create(owner="user:alice", agent="echo")
    assert await store.acquire_run_lock(session.id, run_id="r1", ttl_seconds=60) is True
    assert await store.acquire_run_lock(session.id, run_id="r2", ttl_seconds=60) is False
    assert await store.acquire_run_lock(other.id, run_id="r2", ttl_seconds=60) is True
    await store.release_run_lock(session.id, run_id="r2")  # not the holder: no effect
    assert await store.acquire_run_lock(session.id, run_id="r3", ttl_seconds=60) is False
    await store.release_run_lock(session.id, run_id="r1")
    assert await store.acquire_run_lock(session.id, run_id="r3", ttl_seconds=60) is True
    await store.release_run_lock(session.id, run_id="r1")  # released twice: still no effect
    assert await store.acquire_run_lock(session.id, run_id="r4", ttl_seconds=60) is False


async def test_run_lock_expires_and_a_late_release_does_not_steal_it(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    assert await store.acquire_run_lock(session.id, run_id="slow", ttl_seconds=1)
    await asyncio.sleep(1.3)
    assert await store.acquire_run_lock(session.id, run_id="next", ttl_seconds=60)
    await store.release_run_lock(session.id, run_id="slow")
    assert await store.acquire_run_lock(session.id, run_id="third", ttl_seconds=60) is False


async def test_concurrent_acquire_has_exactly_one_winner(store: SessionStore) -> None:
    session = await store.create(owner="user:alice", agent="echo")
    results = await asyncio.gather(
        *(store.acquire_run_lock(session.id, run_id=f"run-{i}", ttl_seconds=60) for i in range(20))
    )
    assert results.count(True) == 1


# --- backend specifics -------------------------------------------------------------------------


async def test_redis_keys_live_under_the_prefix_and_vanish_on_expiry(
    redis: Redis, key_prefix: str
) -> None:
    store = RedisSessionStore(redis, prefix=key_prefix, max_messages=5, ttl_seconds=TTL)
    session = await store.create(owner="user:alice", agent="echo")
    await store.append(session.id, [user("hi")])
    await store.acquire_run_lock(session.id, run_id="r1", ttl_seconds=1)
    keys = sorted([key async for key in redis.scan_iter(match=f"{key_prefix}*")])
    base = f"{key_prefix}sessions:"
    assert keys == sorted(
        [
            f"{base}{{{session.id}}}:rec",
            f"{base}{{{session.id}}}:msgs",
            f"{base}{{{session.id}}}:lock",
            f"{base}owner:{{user:alice}}",
            f"{base}expiry:{{user:alice}}",
        ]
    )
    ttls = [await redis.pttl(key) for key in keys]
    assert all(0 < ttl <= TTL * 1000 for ttl in ttls), ttls
    await asyncio.sleep(TTL + 0.3)
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}*")] == []


async def test_redis_list_prunes_expired_ids_from_the_owner_index(
    redis: Redis, key_prefix: str
) -> None:
    short = RedisSessionStore(redis, prefix=key_prefix, max_messages=5, ttl_seconds=TTL)
    long = RedisSessionStore(redis, prefix=key_prefix, max_messages=5, ttl_seconds=60)
    doomed = await short.create(owner="user:alice", agent="echo")
    kept = await long.create(owner="user:alice", agent="echo")  # keeps the index alive
    await asyncio.sleep(TTL + 0.3)
    index = f"{key_prefix}sessions:owner:{{user:alice}}"
    assert await redis.zscore(index, doomed.id) is not None  # not pruned yet
    items, total = await long.list(owner="user:alice", limit=10, offset=0)
    assert (total, [s.id for s in items]) == (1, [kept.id])
    assert await redis.zrange(index, 0, -1) == [kept.id]
    assert await redis.zrange(f"{key_prefix}sessions:expiry:{{user:alice}}", 0, -1) == [kept.id]


async def test_build_session_store_picks_the_backend(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    settings = make_settings()
    assert isinstance(build_session_store(settings, None), MemorySessionStore)
    assert isinstance(build_session_store(settings, redis), RedisSessionStore)


async def test_redis_index_entries_without_their_own_record_are_skipped_then_pruned(
    redis: Redis, key_prefix: str
) -> None:
    # The owner's index is written before a record and removed after it (another slot on a
    # cluster): a crash in between leaves an entry without its record.
    store = RedisSessionStore(redis, prefix=key_prefix, max_messages=5, ttl_seconds=60)
    kept = await store.create(owner="user:alice", agent="echo")
    bobs = await store.create(owner="user:bob", agent="echo")
    assert await store.create_with_id(session_id=bobs.id, owner="user:alice", agent="e") is None
    index = store.keys.owner("user:alice")
    assert await redis.zrange(index, 0, -1) == [kept.id]  # the losing claim took its entry back
    now = time.time()
    await redis.zadd(index, {"creating": now, "crashed": now - 3600, bobs.id: now - 3600})
    items, total = await store.list(owner="user:alice", limit=10, offset=0)
    assert ([s.id for s in items], total) == ([kept.id], 1)
    # A young entry may be a creation under way: it stays; the others are pruned.
    assert sorted(await redis.zrange(index, 0, -1)) == sorted([kept.id, "creating"])

"""Client-chosen session ids (AG-UI thread ids), on both store backends: a session is created
under the id once, for its first owner; another owner never gets it; an expired one's history
is never inherited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.agents.registry import build_registry
from app.agents.sessions import SessionService
from app.core.errors import AppError
from app.llm.types import ChatMessage
from app.security.principals import Principal
from app.store.redis_client import build_redis
from app.store.session_backends import MemorySessionStore, RedisSessionStore
from app.store.sessions import SessionStore
from tests.conftest import SettingsFactory

ALICE = Principal(id="user:alice", kind="user", name="alice", scopes=frozenset())
BOB = Principal(id="user:bob", kind="user", name="bob", scopes=frozenset())
THREAD = "5b2f6f0e-2a34-4c1e-9a55-0c1d2e3f4a5b"


@pytest.fixture
async def store(
    store_backend: dict[str, Any], make_settings: SettingsFactory, key_prefix: str
) -> AsyncIterator[SessionStore]:
    """Each backend in turn: memory, the single Redis, the cluster."""
    if not store_backend:
        yield MemorySessionStore(max_messages=50, ttl_seconds=0.5)
        return
    redis = build_redis(make_settings(**store_backend))
    try:
        yield RedisSessionStore(redis, prefix=key_prefix, max_messages=50, ttl_seconds=0.5)
    finally:
        await redis.aclose()


@pytest.fixture
def sessions(store: SessionStore) -> SessionService:
    return SessionService(store=store, agents=build_registry([]))


async def test_one_id_one_session_for_the_first_owner(store: SessionStore) -> None:
    results = await asyncio.gather(
        store.create_with_id(session_id=THREAD, owner="user:alice", agent="chat"),
        store.create_with_id(session_id=THREAD, owner="user:bob", agent="chat"),
    )
    created = [r for r in results if r is not None]
    assert len(created) == 1 and created[0].id == THREAD
    found = await store.get(THREAD)
    assert found is not None and found.owner == created[0].owner
    listed, total = await store.list(owner=found.owner, limit=10, offset=0)
    assert [s.id for s in listed] == [THREAD] and total == 1


async def test_open_with_id_creates_once_then_reuses(sessions: SessionService) -> None:
    first = await sessions.open_with_id(owner=ALICE, session_id=THREAD, agent="chat")
    await sessions.store.append(THREAD, [ChatMessage(role="user", content="hi")])
    again = await sessions.open_with_id(owner=ALICE, session_id=THREAD, agent="chat")
    assert again.id == first.id == THREAD and again.message_count == 1
    with pytest.raises(AppError) as foreign:
        await sessions.open_with_id(owner=BOB, session_id=THREAD, agent="chat")
    assert foreign.value.code == "session_not_found"
    with pytest.raises(AppError) as other_agent:
        await sessions.open_with_id(owner=ALICE, session_id=THREAD, agent="assistant")
    assert other_agent.value.code == "session_agent_mismatch"
    for bad in ("", "a" * 65, "has space", "semi;colon", "slash/id"):
        with pytest.raises(AppError) as malformed:
            await sessions.open_with_id(owner=ALICE, session_id=bad, agent="chat")
        assert malformed.value.code == "session_not_found"


async def test_an_expired_id_starts_empty_for_its_next_owner(sessions: SessionService) -> None:
    await sessions.open_with_id(owner=ALICE, session_id=THREAD, agent="chat")
    await sessions.store.append(THREAD, [ChatMessage(role="user", content="secret")])
    deadline = asyncio.get_running_loop().time() + 5
    while await sessions.store.get(THREAD) is not None:  # reading would refresh: poll rarely
        assert asyncio.get_running_loop().time() < deadline, "the session never expired"
        await asyncio.sleep(0.6)
    record = await sessions.open_with_id(owner=BOB, session_id=THREAD, agent="chat")
    assert record.owner == BOB.id
    assert await sessions.store.messages(THREAD, limit=10, offset=0) == []

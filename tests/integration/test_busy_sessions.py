"""A message sent to a busy session: each ``if_busy`` policy, against both store backends.

SessionService is driven directly with real stores (memory, and a real redis-server). Two
services over one store stand in for two replicas: a release on one wakes nobody on the
other, so those waiters must find their turn by polling the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.agents.errors import AgentNotFound
from app.agents.registry import build_registry
from app.agents.sessions import IfBusy, SessionService
from app.core.errors import Conflict, NotFound
from app.llm.types import ChatMessage
from app.security.principals import Principal
from app.store.redis_client import build_redis
from app.store.session_backends import MemorySessionStore, RedisSessionStore
from app.store.sessions import SessionStore
from tests.conftest import SettingsFactory

ALICE = Principal.for_user("alice")
LOCK_SECONDS = 60
WAIT = 10.0  # seconds a waiter may wait; every test ends far sooner
# Long enough that only an explicit abandon (not a ticket's expiry) can unblock the queue.
TICKET_SECONDS = 30.0


@pytest.fixture
async def store(
    store_backend: dict[str, Any], make_settings: SettingsFactory, key_prefix: str
) -> AsyncIterator[SessionStore]:
    """Each backend in turn: memory, the single Redis, the cluster."""
    if not store_backend:
        yield MemorySessionStore(max_messages=50, ttl_seconds=60)
        return
    redis = build_redis(make_settings(**store_backend))
    try:
        yield RedisSessionStore(redis, prefix=key_prefix, max_messages=50, ttl_seconds=60)
    finally:
        await redis.aclose()


def replica(store: SessionStore) -> SessionService:
    return SessionService(store=store, agents=build_registry([]), ticket_seconds=TICKET_SECONDS)


@pytest.fixture
def sessions(store: SessionStore) -> SessionService:
    return replica(store)


async def claim(
    sessions: SessionService,
    session_id: str,
    run_id: str,
    if_busy: IfBusy = "reject",
    *,
    wait_seconds: float = WAIT,
    interrupt: Callable[[str, str], Awaitable[None]] | None = None,
) -> list[ChatMessage]:
    return await sessions.claim_for_run(
        owner=ALICE,
        session_id=session_id,
        agent="chat",
        run_id=run_id,
        lock_seconds=LOCK_SECONDS,
        history_limit=50,
        if_busy=if_busy,
        wait_seconds=wait_seconds,
        interrupt=interrupt,
    )


async def held_session(sessions: SessionService, holder: str = "r0") -> str:
    record = await sessions.create(owner=ALICE, agent="chat")
    await claim(sessions, record.id, holder)
    return record.id


async def until_waiting(store: SessionStore, session_id: str, expected: list[str]) -> None:
    deadline = time.monotonic() + 5
    while (found := await store.waiting(session_id)) != expected:
        assert time.monotonic() < deadline, f"queue is {found}, expected {expected}"
        await asyncio.sleep(0.01)


async def test_reject_answers_session_busy_at_once(sessions: SessionService) -> None:
    session_id = await held_session(sessions)
    started = time.monotonic()
    with pytest.raises(Conflict) as busy:
        await claim(sessions, session_id, "r1")  # reject is the default
    assert busy.value.code == "session_busy"
    assert time.monotonic() - started < 1
    assert await sessions.holder(session_id=session_id) == "r0"
    await sessions.release_run(session_id=session_id, run_id="r0")
    assert await claim(sessions, session_id, "r1") == []
    assert await sessions.holder(session_id=session_id) == "r1"


async def test_enqueued_runs_take_turns_in_arrival_order(
    store: SessionStore, sessions: SessionService
) -> None:
    other = replica(store)  # a second replica: its waiters are not woken by our releases
    session_id = await held_session(sessions)
    served: list[str] = []

    async def run(service: SessionService, run_id: str) -> None:
        history = await claim(service, session_id, run_id, "enqueue")
        assert await service.holder(session_id=session_id) == run_id
        await service.append_exchange(session_id=session_id, user=run_id, assistant="ok")
        served.append(run_id)
        assert [m.content for m in history[0::2]] == served[:-1]  # it saw every earlier turn
        await service.release_run(session_id=session_id, run_id=run_id)

    tasks = []
    for index, (service, run_id) in enumerate([(sessions, "w1"), (other, "w2"), (sessions, "w3")]):
        tasks.append(asyncio.create_task(run(service, run_id)))
        await until_waiting(store, session_id, ["w1", "w2", "w3"][: index + 1])
    await sessions.release_run(session_id=session_id, run_id="r0")
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert served == ["w1", "w2", "w3"]
    assert await store.waiting(session_id) == []
    assert await sessions.holder(session_id=session_id) is None


async def test_enqueue_gives_up_after_wait_seconds(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)
    started = time.monotonic()
    with pytest.raises(Conflict) as busy:
        await claim(sessions, session_id, "w1", "enqueue", wait_seconds=0.3)
    assert busy.value.code == "session_busy"
    assert "waited 0.3 s" in busy.value.detail
    assert 0.3 <= time.monotonic() - started < 3
    assert await store.waiting(session_id) == []  # it left the queue
    await sessions.release_run(session_id=session_id, run_id="r0")
    assert await claim(sessions, session_id, "r2") == []  # nobody is left in the way


async def test_a_cancelled_waiter_does_not_block_the_next(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)
    gone = asyncio.create_task(claim(sessions, session_id, "w1", "enqueue"))
    await until_waiting(store, session_id, ["w1"])
    next_one = asyncio.create_task(claim(replica(store), session_id, "w2", "enqueue"))
    await until_waiting(store, session_id, ["w1", "w2"])
    gone.cancel()  # its client left
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await store.waiting(session_id) == ["w2"]
    await sessions.release_run(session_id=session_id, run_id="r0")
    await asyncio.wait_for(next_one, 3)  # far below the 30 s ticket TTL
    assert await sessions.holder(session_id=session_id) == "w2"


async def test_interrupt_stops_the_holder_and_goes_ahead_of_enqueued_runs(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)
    enqueued = asyncio.create_task(claim(sessions, session_id, "w1", "enqueue"))
    await until_waiting(store, session_id, ["w1"])
    calls: list[tuple[str, str]] = []

    async def interrupt(holder: str, reason: str) -> None:
        calls.append((holder, reason))
        # The holder keeps its partial answer, then lets go (as RunService does for it).
        await sessions.append_exchange(session_id=session_id, user="first", assistant="partial")
        await sessions.release_run(session_id=session_id, run_id=holder)
        # The answer comes back later than the release; w1, woken by it, polls meanwhile and
        # must find the interrupter's ticket ahead of its own.
        await asyncio.sleep(0.1)

    history = await claim(replica(store), session_id, "i1", "interrupt", interrupt=interrupt)
    assert calls == [("r0", "interrupted")]
    assert [m.content for m in history] == ["first", "partial"]
    assert await sessions.holder(session_id=session_id) == "i1"
    assert not enqueued.done()
    assert await store.waiting(session_id) == ["w1"]
    await sessions.release_run(session_id=session_id, run_id="i1")
    await asyncio.wait_for(enqueued, 3)
    assert await sessions.holder(session_id=session_id) == "w1"


async def test_rollback_says_so_and_a_run_that_just_ended_is_no_error(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)
    calls: list[tuple[str, str]] = []

    async def interrupt(holder: str, reason: str) -> None:
        calls.append((holder, reason))
        await sessions.release_run(session_id=session_id, run_id=holder)
        raise NotFound("No live run with this id.", code="run_not_found")

    await claim(sessions, session_id, "i1", "rollback", interrupt=interrupt)
    assert calls == [("r0", "rolled_back")]
    assert await sessions.holder(session_id=session_id) == "i1"


async def test_interrupt_of_a_free_session_calls_nobody(sessions: SessionService) -> None:
    record = await sessions.create(owner=ALICE, agent="chat")
    calls: list[tuple[str, str]] = []

    async def interrupt(holder: str, reason: str) -> None:
        calls.append((holder, reason))

    await claim(sessions, record.id, "i1", "interrupt", interrupt=interrupt)
    assert (calls, await sessions.holder(session_id=record.id)) == ([], "i1")


async def test_start_for_run_makes_a_session_already_held(sessions: SessionService) -> None:
    record = await sessions.start_for_run(owner=ALICE, agent="chat", run_id="r1", lock_seconds=60)
    assert (record.owner, record.agent, record.message_count) == (ALICE.id, "chat", 0)
    assert await sessions.get_owned(owner=ALICE, session_id=record.id) == record
    assert await sessions.holder(session_id=record.id) == "r1"
    with pytest.raises(Conflict):
        await claim(sessions, record.id, "r2")
    await sessions.release_run(session_id=record.id, run_id="r1")
    assert await claim(sessions, record.id, "r2") == []
    with pytest.raises(AgentNotFound):
        await sessions.start_for_run(owner=ALICE, agent="nobody", run_id="r3", lock_seconds=60)


async def test_a_dead_waiters_ticket_expires_and_stops_blocking(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)
    # A waiter on a replica that died: it polled once, with a short ticket, and never again.
    assert not await store.take_turn(
        session_id, run_id="ghost", ttl_seconds=60, ahead=False, ticket_seconds=0.3
    )
    waiter = asyncio.create_task(claim(sessions, session_id, "w1", "enqueue"))
    await until_waiting(store, session_id, ["ghost", "w1"])
    await sessions.release_run(session_id=session_id, run_id="r0")
    await asyncio.wait_for(waiter, 3)
    assert await sessions.holder(session_id=session_id) == "w1"
    assert await store.waiting(session_id) == []


async def test_a_live_waiter_keeps_a_non_waiting_run_out(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)

    async def poll(run_id: str) -> bool:
        return await store.take_turn(
            session_id, run_id=run_id, ttl_seconds=60, ahead=False, ticket_seconds=60
        )

    assert not await poll("w0")
    await sessions.release_run(session_id=session_id, run_id="r0")  # w0's turn, not yet taken
    assert not await poll("w1")  # behind w0
    with pytest.raises(Conflict):
        await claim(sessions, session_id, "r1")  # reject never jumps the queue
    assert await poll("w0")
    assert await store.waiting(session_id) == ["w1"]
    await store.abandon_turn(session_id, run_id="w1")
    await sessions.release_run(session_id=session_id, run_id="w0")
    assert await claim(sessions, session_id, "r1") == []


async def test_a_session_deleted_while_waiting_is_not_found(
    store: SessionStore, sessions: SessionService
) -> None:
    session_id = await held_session(sessions)
    waiter = asyncio.create_task(claim(sessions, session_id, "w1", "enqueue"))
    await until_waiting(store, session_id, ["w1"])
    await sessions.delete(owner=ALICE, session_id=session_id)
    with pytest.raises(NotFound) as missing:
        await asyncio.wait_for(waiter, 3)
    assert missing.value.code == "session_not_found"
    assert await sessions.holder(session_id=session_id) is None  # it did not keep the lock


async def test_redis_a_dropped_ticket_frees_the_queue_at_once(
    redis: Redis, key_prefix: str
) -> None:
    store = RedisSessionStore(redis, prefix=key_prefix, max_messages=50, ttl_seconds=60)
    sessions = replica(store)
    session_id = await held_session(sessions)
    await store.take_turn(
        session_id, run_id="ghost", ttl_seconds=60, ahead=False, ticket_seconds=60
    )
    waiter = asyncio.create_task(claim(sessions, session_id, "w1", "enqueue"))
    await until_waiting(store, session_id, ["ghost", "w1"])
    base = f"{key_prefix}sessions:{{{session_id}}}:"
    assert await redis.zrange(f"{base}queue", 0, -1) == ["ghost", "w1"]
    await redis.zrem(f"{base}tickets", "ghost")  # its replica died long ago
    await sessions.release_run(session_id=session_id, run_id="r0")
    await asyncio.wait_for(waiter, 3)
    assert await sessions.holder(session_id=session_id) == "w1"
    assert await redis.exists(f"{base}queue", f"{base}tickets") == 0  # the dead ticket went

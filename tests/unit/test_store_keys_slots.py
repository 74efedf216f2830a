"""Every script, MULTI/EXEC and WATCH of the session, agent-state, user, API key, A2A push
and OpenAI response stores, and of the ``limits`` windows, declares keys of one hash slot
(what a Redis Cluster requires): the key builders are the ones the code calls."""

from __future__ import annotations

import pytest
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.crc import key_slot

from app.protocols.a2a.push_store import RedisPushConfigStore
from app.store.agent_state import RedisAgentStateStore
from app.store.session_redis import RedisSessionStore, SessionKeys
from app.store.users import RedisUserStore

PREFIX = "agent-service:"
SESSION_IDS = ["0f9c2d4e6a8b4c1d9e7f5a3b1c0d2e4f", "5b2f6f0e-2a34-4c1e", "thread_1", "a"]
OWNERS = ["user:admin", "key:7f3a", "user:a.b@c-d", "user:{weird}", "oidc:a:b"]
USERNAMES = ["admin", "a.b@example.com", "x", "user-1_2"]
KEYS = SessionKeys(PREFIX)


def _one_slot(keys: list[str]) -> None:
    slots = {key_slot(key.encode()) for key in keys}
    assert len(slots) == 1, keys


def _client() -> Redis:
    return Redis()  # never connects: only key names are built here


@pytest.mark.parametrize("session_id", SESSION_IDS)
def test_session_scripts_keep_one_session_in_one_slot(session_id: str) -> None:
    lock, queue, tickets = KEYS.lock(session_id), KEYS.queue(session_id), KEYS.tickets(session_id)
    rec, msgs = KEYS.rec(session_id), KEYS.msgs(session_id)
    _one_slot([lock])  # RELEASE_LOCK
    _one_slot([lock, queue, tickets])  # ACQUIRE_LOCK, TAKE_TURN, ABANDON_TURN
    _one_slot([queue, tickets])  # WAITING
    _one_slot([rec, msgs])  # APPEND, CREATE_IF_ABSENT
    # MULTIs: create (record + lock), get (read + expiry), delete (record, history, lock).
    _one_slot([rec, msgs, lock])
    # The store's own builder is the one tested, and the agent state joins the session's slot.
    store = RedisSessionStore(_client(), prefix=PREFIX, max_messages=5, ttl_seconds=60)
    assert store.keys.rec(session_id) == rec
    state = RedisAgentStateStore(_client(), prefix=PREFIX, ttl_seconds=60)
    _one_slot([state.key(session_id), rec, lock])  # save: one MULTI on the state key


@pytest.mark.parametrize("owner", OWNERS)
def test_an_owners_index_keys_share_one_slot(owner: str) -> None:
    # _index and _unindex (MULTI), list's count and page (MULTI).
    _one_slot([KEYS.owner(owner), KEYS.expiry(owner)])


def test_sessions_of_different_ids_spread_over_slots() -> None:
    # The tag is the session's, not a shared one: sessions are not pinned to one node.
    slots = {key_slot(KEYS.rec(f"{n:032x}").encode()) for n in range(50)}
    assert len(slots) > 10


@pytest.mark.parametrize("username", USERNAMES)
def test_a_users_keys_share_one_slot(username: str) -> None:
    store = RedisUserStore(_client(), prefix=PREFIX)
    record, signed_out = store._key(username), store._signed_out_key(username)
    _one_slot([record])  # update: WATCH + MULTI
    _one_slot([signed_out])  # sign_out: MULTI
    _one_slot([record, signed_out])  # delete: MULTI; status: one pipeline to one node


def test_a2a_push_transactions_and_leases_touch_one_key() -> None:
    store = RedisPushConfigStore(_client(), prefix=PREFIX)
    _one_slot([store._key("task-1")])  # put: MULTI (HSET + EXPIRE)
    _one_slot([store._lease("task-1")])  # _TAKE_LEASE, _DROP_LEASE


@pytest.mark.parametrize("key", ["user:alice/GET//v1/agents", "ip:10.0.0.1", "a{b}c"])
def test_the_limits_sliding_window_keys_share_one_slot(key: str) -> None:
    # limits' sliding window scripts read and write two keys: it tags them itself.
    storage = RedisStorage(
        "async+redis://127.0.0.1:1", implementation="redispy", key_prefix=f"{PREFIX}ratelimit"
    )  # never connects
    names = [storage._current_window_key(key), storage._previous_window_key(key)]
    _one_slot([storage.bridge.prefixed_key(name) for name in names])

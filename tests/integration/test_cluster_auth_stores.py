"""The user and API key stores, the generated secret key, the principal-change bus, the A2A
push store and the LLM cache driven directly on each Redis topology (one Redis, a cluster):
every operation answers, and what the crash-ordering relies on holds (a leftover name or an
index entry without its record is skipped)."""

from __future__ import annotations

import asyncio
import time

from a2a.types import TaskPushNotificationConfig
from redis.asyncio import Redis

from app.llm.cache_store import RedisCacheStore
from app.protocols.a2a.push_store import RedisPushConfigStore
from app.security.invalidation import InvalidationBus
from app.security.keyring import Keyring
from app.security.revocation import UserCheck
from app.store.api_keys import RedisApiKeyStore
from app.store.records import ApiKeyRecord, UserRecord
from app.store.users import RedisUserStore
from tests.conftest import PATIENT_CONNECT_SECONDS, SettingsFactory


def _user(name: str) -> UserRecord:
    return UserRecord(username=name, password_hash="x", scopes=["agents:run"])


async def test_users_create_list_update_sign_out_and_delete(redis: Redis, key_prefix: str) -> None:
    store = RedisUserStore(redis, prefix=key_prefix)
    names = ["alice", "bob", "carol.d@example.com"]
    for name in names:
        assert await store.create(_user(name))
    assert not await store.create(_user("alice"))  # first writer wins
    assert [user.username for user in await store.list()] == sorted(names)

    disabled = await store.update("bob", lambda u: u.model_copy(update={"disabled": True}))
    assert disabled is not None and disabled.disabled
    assert await store.update("nobody", lambda u: u) is None

    await store.sign_out("alice", "jti-1", expires_at=time.time() + 60)
    await store.sign_out("alice", "jti-old", expires_at=time.time() - 1)
    status = await store.status("alice")
    assert status.user is not None and status.signed_out == frozenset({"jti-1"})

    removed = await store.delete("alice")
    assert removed is not None and removed.username == "alice"
    assert await store.delete("alice") is None
    gone = await store.status("alice")
    assert (gone.user, gone.signed_out) == (None, frozenset())
    assert [user.username for user in await store.list()] == ["bob", "carol.d@example.com"]


async def test_a_user_name_left_without_its_record_is_not_listed(
    redis: Redis, key_prefix: str
) -> None:
    # What a crash between the two commands of create (or of delete) leaves behind.
    store = RedisUserStore(redis, prefix=key_prefix)
    await store.create(_user("dave"))
    await redis.sadd(f"{key_prefix}user-names", "ghost")
    assert [user.username for user in await store.list()] == ["dave"]


async def test_api_keys_create_look_up_list_and_revoke(redis: Redis, key_prefix: str) -> None:
    store = RedisApiKeyStore(redis, prefix=key_prefix)
    records = [
        ApiKeyRecord(id=f"k{n}", name=f"key {n}", prefix="ak_", scopes=[], created_by="cli")
        for n in range(3)
    ]
    for n, record in enumerate(records):
        await store.create(record, key_hash=f"digest-{n}")
    found = await store.get_by_hash("digest-1")
    assert found is not None and found.id == "k1"
    assert [r.id for r in await store.list()] == ["k0", "k1", "k2"]

    revoked = await store.revoke("k1")
    assert revoked is not None and revoked.revoked_at is not None
    assert await store.get_by_hash("digest-1") is None  # it stops working at once
    listed = {r.id: r.revoked_at is not None for r in await store.list()}
    assert listed == {"k0": False, "k1": True, "k2": False}
    assert await store.revoke("missing") is None


async def test_the_generated_secret_key_is_shared(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    first, second = Keyring(make_settings()), Keyring(make_settings())
    await first.load(redis, for_cli=True)
    await second.load(redis, for_cli=True)
    assert first.source == second.source == "generated-shared"
    assert first.signing_key == second.signing_key


class _Recorder(UserCheck):
    def __init__(self) -> None:
        self.dropped: list[str] = []

    def invalidate(self, principal_id: str) -> None:
        self.dropped.append(principal_id)

    def clear(self) -> None:
        pass


async def test_a_principal_change_reaches_another_process(redis: Redis, key_prefix: str) -> None:
    listener = _Recorder()
    bus = InvalidationBus(redis, prefix=key_prefix, check=listener)
    await bus.start()
    try:
        assert bus.listening.is_set()
        publisher = InvalidationBus(redis, prefix=key_prefix, check=None)
        await publisher.publish("user:alice")
        deadline = time.monotonic() + 5
        while "user:alice" not in listener.dropped:
            assert time.monotonic() < deadline, listener.dropped
            await asyncio.sleep(0.02)
    finally:
        await bus.aclose()


async def test_push_configs_and_the_delivery_lease(redis: Redis, key_prefix: str) -> None:
    store = RedisPushConfigStore(redis, prefix=key_prefix)
    config = TaskPushNotificationConfig(task_id="task-1", id="c1", url="https://example.com/hook")
    assert await store.put(config, ttl_seconds=60)
    found = await store.get("task-1", "c1")
    assert found is not None and found.url == "https://example.com/hook"
    assert [c.id for c in await store.list("task-1")] == ["c1"]
    assert await store.take_lease("task-1", "p1")
    assert not await store.take_lease("task-1", "p2")
    await store.drop_lease("task-1", "p1")
    assert await store.take_lease("task-1", "p2")
    await store.delete("task-1", "c1")
    assert await store.list("task-1") == []


async def test_the_llm_cache_reads_an_entry_with_its_ttl(redis: Redis, key_prefix: str) -> None:
    # This client's first command opens its connections (a cluster's: the slot map and the
    # node's) inside the cache's 0.5 s backstop, over it now and then on a loaded machine: the
    # backstop is the outage tests' business, not this one's.
    cache = RedisCacheStore(
        redis, prefix=f"{key_prefix}llmcache:", op_timeout=4 * PATIENT_CONNECT_SECONDS
    )
    await cache.set("abc", "answer", 30)
    value, left = await cache.get_with_ttl("abc")
    assert value == "answer" and 0 < left <= 30
    assert await cache.get_with_ttl("missing") == (None, 0.0)

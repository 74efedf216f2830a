"""The run store, the task queue and the live-run registry driven directly, on the single
Redis and on the Redis Cluster (the `redis` fixture): what their cluster-safe layout must
keep: one record per accepted task, nothing left by a refused one, owners served in turn,
a lost release never blocking an owner, a live run found from its record or its own key."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis, RedisCluster

from app.agents.control_bus import ControlReply, ControlRequest, RunControlBus
from app.agents.live_runs import LiveRunRegistry
from app.store.redis_client import build_redis
from app.store.run_records import RunRecord
from app.store.run_store import StoredEvent
from app.store.run_store_redis import RedisRunStore
from app.tasks.backend import IdempotencyKey
from app.tasks.redis_backend import RedisTaskBackend
from tests.conftest import SettingsFactory


def _backend(redis: Redis, prefix: str, *, blocking: Redis | None = None) -> RedisTaskBackend:
    store = RedisRunStore(
        redis,
        blocking=blocking or redis,
        prefix=prefix,
        retention_seconds=600,
        run_retention_seconds=60,
        events_max=100,
    )
    return RedisTaskBackend(redis, blocking=blocking or redis, store=store)


def _task(owner: str, text: str = "hello", session_id: str | None = None) -> RunRecord:
    return RunRecord(
        id=uuid.uuid4().hex, owner=owner, agent="chat", input=text, session_id=session_id
    )


async def test_a_task_is_stored_indexed_and_queued(redis: Redis, key_prefix: str) -> None:
    backend = _backend(redis, key_prefix)
    record = _task("user:ann", session_id="s-1")
    created = await backend.submit(record, idempotency=None)
    assert created.outcome == "created"
    stored = await backend.store.get(record.id)
    assert stored is not None and stored.status == "queued"
    keys = backend.store.keys
    for index in (keys.owner_index("user:ann"), keys.task_index("user:ann")):
        assert await redis.zrange(index, 0, -1) == [record.id]
    assert await redis.zrange(keys.session_index("s-1"), 0, -1) == [record.id]
    assert await backend.queue_depth() == 1
    [delivery] = await backend.dequeue(consumer="w", count=5, block_ms=50)
    assert delivery.task_id == record.id
    await backend.ack(delivery)
    assert await backend.queue_depth() == 0


async def test_a_refused_submission_leaves_no_record(redis: Redis, key_prefix: str) -> None:
    backend = _backend(redis, key_prefix)
    key = IdempotencyKey(key="k", fingerprint="body-1")
    first = _task("user:ann")
    assert (await backend.submit(first, idempotency=key)).outcome == "created"

    replay, other_body = _task("user:ann"), _task("user:ann")
    replayed = await backend.submit(replay, idempotency=key)
    assert replayed.outcome == "replayed" and replayed.record.id == first.id
    reused = await backend.submit(
        other_body, idempotency=IdempotencyKey(key="k", fingerprint="body-2")
    )
    assert reused.outcome == "key_reused" and reused.record.id == first.id
    over = _task("user:ann")
    assert (await backend.submit(over, idempotency=None, max_active=1)).outcome == "over_cap"
    for refused in (replay, other_body, over):
        assert await backend.store.get(refused.id) is None
    keys = backend.store.keys
    for index in (keys.owner_index("user:ann"), keys.task_index("user:ann")):
        assert await redis.zrange(index, 0, -1) == [first.id]  # no refused id listed
    assert await backend.queue_depth() == 1


async def test_concurrent_submissions_with_one_key_make_one_task(
    redis: Redis, key_prefix: str, redis_url: str, make_settings: SettingsFactory
) -> None:
    # The subject is the submit script's atomicity, not the client's: a client whose eight
    # fresh connections must each open (0.25 s) and finish their handshake on a loaded
    # machine can time one out, and redis-py's cluster client then drops the node's other
    # connections mid-handshake ('NoneType' object has no attribute 'writelines'). So a
    # patient client, which knows the slot map before the burst (no concurrent start-up).
    # (The `redis` fixture deletes the test's keys after it.)
    patient = build_redis(
        make_settings(REDIS_URL=redis_url, REDIS_SOCKET_TIMEOUT=2.0, REDIS_CONNECT_TIMEOUT=2.0)
    )
    if isinstance(patient, RedisCluster):
        await patient.initialize()
    backend = _backend(patient, key_prefix)
    key = IdempotencyKey(key="burst", fingerprint="same")
    records = [_task("user:ann") for _ in range(8)]
    results = await asyncio.gather(*(backend.submit(r, idempotency=key) for r in records))
    assert [r.outcome for r in results].count("created") == 1
    assert len({r.record.id for r in results}) == 1
    stored = [await backend.store.get(r.id) for r in records]
    assert sum(record is not None for record in stored) == 1
    await patient.aclose()


async def test_a_stopping_workers_blocked_read_ends_at_once_empty_handed(
    redis: Redis, key_prefix: str, redis_url: str, make_settings: SettingsFactory
) -> None:
    blocking = build_redis(make_settings(REDIS_URL=redis_url), blocking=True)  # as served
    backend = _backend(redis, key_prefix, blocking=blocking)
    one_node = not isinstance(redis, RedisCluster)
    block_ms = 4_000 if one_node else 300  # a cluster's read ends within its block
    # A connection whose last command was XREADGROUP may be idle in some other client's pool
    # (the session's redis-server serves every test of this worker): only a connection
    # Redis holds blocked (flag b) in XREADGROUP that was not there before is our read.
    readers_before = {c["id"] for c in await redis.client_list() if c["cmd"] == "xreadgroup"}
    reading = asyncio.create_task(backend.dequeue(consumer="w", count=5, block_ms=block_ms))
    if one_node:  # wait until Redis holds the read blocked, then unblock it
        while not any(
            c["cmd"] == "xreadgroup" and "b" in c["flags"] and c["id"] not in readers_before
            for c in await redis.client_list()
        ):
            await asyncio.sleep(0.01)
    started = time.monotonic()
    await backend.interrupt_dequeue()
    assert await asyncio.wait_for(reading, timeout=5) == []
    assert time.monotonic() - started < (2 if one_node else 3)  # not the 4 s block
    # Nothing was taken or lost: the next read gets a task submitted now.
    task = _task("user:ann")
    await backend.submit(task, idempotency=None)
    [delivery] = await backend.dequeue(consumer="w", count=5, block_ms=50)
    assert delivery.task_id == task.id
    await backend.aclose()
    await blocking.aclose()


async def test_owners_are_served_in_turn(redis: Redis, key_prefix: str) -> None:
    backend = _backend(redis, key_prefix)
    backlog = [_task("user:ann", f"a{i}") for i in range(6)]
    for record in backlog:
        await backend.submit(record, idempotency=None)
    theirs = [_task("user:bob", f"b{i}") for i in range(2)]
    for record in theirs:
        await backend.submit(record, idempotency=None)
    handed: list[str] = []
    while len(handed) < 8:
        deliveries = await backend.dequeue(consumer="w", count=1, block_ms=50)
        handed += [d.task_id for d in deliveries]
        for delivery in deliveries:
            await backend.ack(delivery)
    ann, bob = [r.id for r in backlog], [r.id for r in theirs]
    # ann's first went out on submit; then the owners alternate while both wait.
    assert handed == [ann[0], bob[0], ann[1], bob[1], *ann[2:]], handed


async def test_a_finished_task_frees_its_owners_cap_even_if_its_release_was_lost(
    redis: Redis, key_prefix: str
) -> None:
    backend = _backend(redis, key_prefix)
    store = backend.store
    first, second = _task("user:ann"), _task("user:ann")
    assert (await backend.submit(first, idempotency=None, max_active=1)).outcome == "created"
    assert (await backend.submit(second, idempotency=None, max_active=1)).outcome == "over_cap"

    # A terminal transition releases the cap with a command of its own...
    assert await store.transition(first.id, to="cancelled", allowed_from=frozenset({"queued"}))
    assert (await backend.submit(second, idempotency=None, max_active=1)).outcome == "created"
    # ...and when that command is lost (a crash), the next submission at the cap reads the
    # member's record and drops it.
    await redis.hset(store.keys.record(second.id), "status", "completed")  # no release
    third = _task("user:ann")
    assert (await backend.submit(third, idempotency=None, max_active=1)).outcome == "created"
    active = await redis.zrange(store.keys.active("user:ann"), 0, -1)
    assert active == [third.id]


async def test_a_foreground_run_is_created_with_its_first_events_and_finished(
    redis: Redis, key_prefix: str
) -> None:
    store = _backend(redis, key_prefix).store
    record = RunRecord(
        id=uuid.uuid4().hex, kind="run", owner="user:ann", agent="chat", input="hi",
        status="running", session_id="s-2",
    )  # fmt: skip
    first = [StoredEvent(seq=1, json='{"type":"run_started"}')]
    await store.create(record, first)
    assert (await store.get(record.id)) == record
    assert await store.read_events(record.id, after=0, limit=10) == first
    assert await redis.zrange(store.keys.session_index("s-2"), 0, -1) == [record.id]
    last = [StoredEvent(seq=2, json='{"type":"run_completed"}')]
    moved = await store.finish(
        record.id,
        last,
        kind="run",
        to="completed",
        allowed_from=frozenset({"running"}),
        changes={},
        also=[("ZREM", f"{key_prefix}concurrency:runs:user:ann", record.id)],
    )
    assert moved
    finished = await store.get(record.id)
    assert finished is not None and finished.status == "completed"
    assert await store.last_seq(record.id) == 2


async def test_scripts_lost_by_redis_are_loaded_again(redis: Redis, key_prefix: str) -> None:
    backend = _backend(redis, key_prefix)
    await redis.script_flush()  # every primary of a cluster
    record = RunRecord(id=uuid.uuid4().hex, kind="run", owner="u", agent="chat", input="x")
    await backend.store.create(record, [StoredEvent(seq=1, json="{}")])
    await redis.script_flush()
    assert await backend.store.finish(
        record.id, [StoredEvent(seq=2, json="{}")], kind="run", to="completed",
        allowed_from=frozenset({"queued"}), changes={},
    )  # fmt: skip
    assert await backend.store.last_seq(record.id) == 2
    await redis.script_flush()
    task = _task("u")
    assert (await backend.submit(task, idempotency=None)).outcome == "created"
    assert await redis.zrange(backend.store.keys.task_index("u"), 0, -1) == [task.id]
    [delivery] = await backend.dequeue(consumer="w", count=5, block_ms=50)
    assert delivery.task_id == task.id


async def test_a_live_run_is_found_from_its_record_or_its_own_key(
    redis: Redis, key_prefix: str
) -> None:
    registry = LiveRunRegistry(redis, prefix=key_prefix, holder="proc-a", ttl_seconds=30)
    store = _backend(redis, key_prefix).store
    await redis.set(f"{key_prefix}runs:holder:proc-a", "1", ex=30)  # its heartbeat
    record = RunRecord(
        id=uuid.uuid4().hex, kind="run", owner="user:ann", agent="chat", input="x",
        status="running", holder="proc-a",
    )  # fmt: skip
    await store.create(record)
    live = await registry.lookup(record.id)
    assert live is not None and (live.owner, live.holder) == ("user:ann", "proc-a")
    await redis.delete(f"{key_prefix}runs:holder:proc-a")
    assert await registry.lookup(record.id) is None  # its holder stopped beating

    await registry.announce("no-record", "user:bob")
    live = await registry.lookup("no-record")
    assert live is not None and (live.owner, live.holder) == ("user:bob", "proc-a")
    await registry.retire("no-record")
    assert await registry.lookup("no-record") is None


async def test_a_control_request_reaches_the_holder_through_its_inbox(
    make_settings: SettingsFactory, redis_url: str, key_prefix: str
) -> None:
    """Two processes' buses, each on a client of its own (fresh: the first command either
    sends is the inbox's SUBSCRIBE): classic PUBLISH reaches the holder wherever it listens,
    and its receiver count says so."""
    holder_redis = build_redis(make_settings(REDIS_URL=redis_url))
    asker_redis = build_redis(make_settings(REDIS_URL=redis_url))
    holder = RunControlBus(holder_redis, prefix=key_prefix)
    asker = RunControlBus(asker_redis, prefix=key_prefix)
    seen: list[ControlRequest] = []

    def handle(request: ControlRequest) -> ControlReply:
        seen.append(request)
        return ControlReply(outcome="accepted")

    holder.start(handle)
    asker.start(lambda request: None)
    try:
        await asyncio.wait_for(holder.listening.wait(), timeout=5)
        await holder.announce("run-x", "user:ann")
        ask = ControlRequest(run_id="run-x", principal_id="user:ann", action="cancel")
        reply = await asker.request(ask)
        assert reply is not None and reply.outcome == "accepted"
        assert [r.run_id for r in seen] == ["run-x"]
        theirs = ask.model_copy(update={"principal_id": "user:bob"})
        assert await asker.request(theirs) == ControlReply(outcome="run_not_found")
        await holder.retire("run-x")
        assert await asker.request(ask) is None
    finally:
        await holder.aclose()
        await asker.aclose()
        await holder_redis.aclose()
        await asker_redis.aclose()

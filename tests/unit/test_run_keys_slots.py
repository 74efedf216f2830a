"""Every script of the run store, the task queue, the live-run registry and the run slots
declares keys of one hash slot (what a Redis Cluster requires), for any ids and owners, and
builds no key inside Lua: the key builders are the ones the code calls."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from app.agents import live_runs
from app.store import concurrency, run_scripts, usage_ledger_redis
from app.store.run_store import RunKeys
from app.store.run_store_redis import RedisRunStore
from app.tasks import redis_scripts
from app.tasks.backend import IdempotencyKey
from app.tasks.redis_backend import RedisTaskBackend
from app.webhooks import deliveries_redis

PREFIX = "agent-service:"
RUN_IDS = ["0f9c2d4e6a8b4c1d9e7f5a3b1c0d2e4f", "run-1", "a{b}c", "{}"]
OWNERS = ["user:admin", "apikey:7f3a", "user:{weird}", "user:a:b"]
KEYS = RunKeys(PREFIX)


def _one_slot(keys: list[str]) -> None:
    slots = {key_slot(key.encode()) for key in keys}
    assert len(slots) == 1, keys


def _backend() -> RedisTaskBackend:
    client = Redis()  # never connects: only key names are built here
    store = RedisRunStore(
        client,
        blocking=client,
        prefix=PREFIX,
        retention_seconds=60,
        run_retention_seconds=60,
        events_max=10,
    )
    return RedisTaskBackend(client, blocking=client, store=store)


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_run_store_scripts_keep_one_run_in_one_slot(run_id: str) -> None:
    # CREATE and TRANSITION: the record; APPEND_EVENT and APPEND_EVENTS: events and seq.
    _one_slot([KEYS.record(run_id)])
    _one_slot([KEYS.events(run_id), KEYS.seq(run_id)])
    # finish() and create() pipeline the two: same slot, so a cluster sends them together.
    _one_slot([KEYS.record(run_id), KEYS.events(run_id), KEYS.seq(run_id)])


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_live_run_lookup_and_forget_keep_one_run_in_one_slot(run_id: str) -> None:
    # _LOOKUP: the record and the run's live key; _FORGET_IF_HELD: the live key.
    _one_slot([KEYS.record(run_id), KEYS.live(run_id)])


@pytest.mark.parametrize("owner", OWNERS)
def test_submit_and_refill_keep_the_queue_in_one_slot(owner: str) -> None:
    backend = _backend()
    with_key = backend.submit_keys(owner, IdempotencyKey(key="k-1", fingerprint="f"))
    without = backend.submit_keys(owner, None)
    assert all(with_key) and all(without)  # a cluster would hash '' to slot 0
    every_owner = [key for other in OWNERS for key in backend.submit_keys(other, None)]
    _one_slot(with_key + without + every_owner + backend.queue_keys)  # SUBMIT, REFILL
    _one_slot([KEYS.active(owner), KEYS.queue("queue")])  # the run store's release


@pytest.mark.parametrize("owner", OWNERS)
def test_run_slot_scripts_touch_one_key(owner: str) -> None:
    # _ACQUIRE and _RENEW: the principal's one sorted set.
    slots = concurrency.RedisSlots(
        Redis(), prefix=PREFIX, kind="runs", lease_seconds=1, fail_open=True
    )
    _one_slot([slots._key(owner)])


SCRIPTS = {
    "CREATE": run_scripts.CREATE,
    "TRANSITION": run_scripts.TRANSITION,
    "APPEND_EVENT": run_scripts.APPEND_EVENT,
    "APPEND_EVENTS": run_scripts.APPEND_EVENTS,
    "SUBMIT": redis_scripts.SUBMIT,
    "REFILL": redis_scripts.REFILL,
    "_LOOKUP": live_runs._LOOKUP,
    "_FORGET_IF_HELD": live_runs._FORGET_IF_HELD,
    "_ACQUIRE": concurrency._ACQUIRE,
    "_RENEW": concurrency._RENEW,
    "webhooks CLAIM": deliveries_redis.CLAIM,
    "usage RESERVE": usage_ledger_redis.RESERVE,
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_name_only_declared_keys(name: str) -> None:
    """A command's key is KEYS[n] or a parameter of a Lua function handed KEYS[n]: never a
    name built from ARGV or from a value read in Redis."""
    calls = re.findall(r"redis\.call\('([A-Z]+)',\s*([^,)]+)", SCRIPTS[name])
    assert calls
    parameters = {"queue", "waiting", "rounds", "served", "clock"}  # DISPATCH's
    parameters |= {"spend[i]", "holds[i]"}  # RESERVE's: {KEYS[1], KEYS[2]}, {KEYS[3], KEYS[4]}
    for command, key in calls:
        if command == "TIME":
            continue
        assert re.fullmatch(r"KEYS\[\d\]", key) or key in parameters, (command, key)
    assert ".." not in " ".join(key for _, key in calls)

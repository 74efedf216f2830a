"""Which process holds which live run.

A run with a record says so in it: the record's ``holder`` field names the process (set when
the record is created, or by the worker that takes a task), and the process keeps one
heartbeat key, ``{prefix}runs:holder:{holder}``, alive (TTL refreshed every ``ttl / 3``
seconds). While the record is live and the heartbeat exists, the holder has the run: no key
per run, no round trip to announce or retire one (the record's end says it ended).

A run without a record (RUN_LOG_ENABLED=false, or its record could not be written) is
announced on its own: ``{prefix}runs:live:{<run_id>}`` = ``{"owner", "holder"}`` (the run's
hash tag: one slot with its record), refreshed with the heartbeat (re-created if Redis lost
it) and deleted when the run ends.

A killed process stops refreshing, so its runs are unreachable within the TTL; until then its
inbox has no subscriber, which the sender sees at once. Redis failures here never stop a run:
the run goes on, reachable from its own process, and the next refresh repairs the keys.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.lifecycle import raise_if_cancelling, stop_task
from app.store.run_store_redis import RunKeys

log = structlog.get_logger(__name__)

LIVE_RUN_TTL_SECONDS = 30

# Delete the entry only while this process holds it (a task run id may move to another worker).
_FORGET_IF_HELD = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['holder'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


# The holder of a live run: from its record (live status; the caller then checks the
# holder's heartbeat, another slot), else from the run's own key (runs without a record).
# KEYS: record, live key. Replies {1, entry}: from the record; {0, entry}: the run's key.
_LOOKUP = """
local found = redis.call('HMGET', KEYS[1], 'owner', 'holder', 'status')
local holder, status = found[2], found[3]
if holder and holder ~= '' then
  if status ~= 'running' and status ~= 'input_required' and status ~= 'paused'
      and status ~= 'pause_requested' then
    return false
  end
  return {1, cjson.encode({owner = found[1], holder = holder})}
end
local entry = redis.call('GET', KEYS[2])
if not entry then return false end
return {0, entry}
"""


class LiveRun(BaseModel):
    owner: str
    holder: str


class LiveRunRegistry:
    def __init__(
        self, redis: Redis, *, prefix: str, holder: str, ttl_seconds: int = LIVE_RUN_TTL_SECONDS
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.holder = holder
        self._ttl = ttl_seconds
        self._held: dict[str, str] = {}  # run id -> owner, the record-less runs announced
        self._forget = redis.register_script(_FORGET_IF_HELD)
        self._lookup = redis.register_script(_LOOKUP)
        self._records = RunKeys(prefix)
        self._task: asyncio.Task[None] | None = None

    def _key(self, run_id: str) -> str:
        return self._records.live(run_id)

    def _heartbeat_key(self, holder: str | None = None) -> str:
        return f"{self._prefix}runs:holder:{holder or self.holder}"

    def _entry(self, owner: str) -> str:
        return LiveRun(owner=owner, holder=self.holder).model_dump_json()

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="live-run-registry")

    async def aclose(self) -> None:
        await stop_task(self._task)
        try:  # this process holds nothing from now on
            await self._redis.delete(self._heartbeat_key())
        except RedisError:
            pass  # it expires within the TTL

    async def announce(self, run_id: str, owner: str) -> None:
        self._held[run_id] = owner
        try:
            await self._redis.set(self._key(run_id), self._entry(owner), ex=self._ttl)
        except RedisError as exc:
            log.warning("live_run_announce_failed", run_id=run_id, error=type(exc).__name__)

    async def retire(self, run_id: str) -> None:
        if self._held.pop(run_id, None) is None:
            return
        try:
            await self._forget(keys=[self._key(run_id)], args=[self.holder])
        except RedisError as exc:  # the entry expires by itself
            log.warning("live_run_retire_failed", run_id=run_id, error=type(exc).__name__)

    async def lookup(self, run_id: str) -> LiveRun | None:
        """Where the run lives, or None when no process holds it. Raises RedisError."""
        reply: Any = await self._lookup(keys=[self._records.record(run_id), self._key(run_id)])
        if not reply:
            return None
        try:
            live = LiveRun.model_validate_json(reply[1])
        except ValidationError:
            return None
        if int(reply[0]) and not await self._redis.exists(self._heartbeat_key(live.holder)):
            return None  # the record's holder is gone: nobody holds the run
        return live

    async def _refresh_forever(self) -> None:
        while True:  # the heartbeat first: records naming this holder count from now
            try:
                await self._refresh()
            except RedisError as exc:
                raise_if_cancelling()
                log.warning("live_run_refresh_failed", error=type(exc).__name__)
            await asyncio.sleep(self._ttl / 3)

    async def _refresh(self) -> None:
        held = list(self._held.items())
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._heartbeat_key(), "1", ex=self._ttl)
            for run_id, _ in held:
                pipe.expire(self._key(run_id), self._ttl)
            refreshed = (await pipe.execute())[1:]
        missing = [
            (run_id, owner) for (run_id, owner), ok in zip(held, refreshed, strict=True) if not ok
        ]
        if missing:  # Redis lost them (restart, eviction): announce again
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id, owner in missing:
                    if run_id in self._held:
                        pipe.set(self._key(run_id), self._entry(owner), ex=self._ttl)
                await pipe.execute()

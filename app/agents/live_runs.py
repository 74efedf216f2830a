"""Which process holds which live run: one Redis key per run, with a TTL kept fresh.

``{prefix}runs:live:{run_id}`` = ``{"owner": principal id, "holder": process id}``. A process
announces a run before anyone can learn its id, refreshes every run it holds in one pipeline
each ``ttl / 3`` seconds (re-creating keys that vanished, e.g. after a Redis restart), and
deletes the key when the run ends. A killed process stops refreshing, so its entries expire
within the TTL; until then its inbox has no subscriber, which the sender sees at once.

Redis failures here never stop a run: the run goes on, reachable from its own process, and
the next refresh announces it again.
"""

from __future__ import annotations

import asyncio

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.lifecycle import raise_if_cancelling, stop_task

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
        self._held: dict[str, str] = {}  # run id -> owner, the runs this process holds
        self._forget = redis.register_script(_FORGET_IF_HELD)
        self._task: asyncio.Task[None] | None = None

    def _key(self, run_id: str) -> str:
        return f"{self._prefix}runs:live:{run_id}"

    def _entry(self, owner: str) -> str:
        return LiveRun(owner=owner, holder=self.holder).model_dump_json()

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="live-run-registry")

    async def aclose(self) -> None:
        await stop_task(self._task)

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
        raw = await self._redis.get(self._key(run_id))
        if raw is None:
            return None
        try:
            return LiveRun.model_validate_json(raw)
        except ValidationError:
            return None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._refresh()
            except RedisError as exc:
                raise_if_cancelling()
                log.warning("live_run_refresh_failed", error=type(exc).__name__)

    async def _refresh(self) -> None:
        held = list(self._held.items())
        if not held:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id, _ in held:
                pipe.expire(self._key(run_id), self._ttl)
            refreshed = await pipe.execute()
        missing = [
            (run_id, owner) for (run_id, owner), ok in zip(held, refreshed, strict=True) if not ok
        ]
        if missing:  # Redis lost them (restart, eviction): announce again
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id, owner in missing:
                    if run_id in self._held:
                        pipe.set(self._key(run_id), self._entry(owner), ex=self._ttl)
                await pipe.execute()

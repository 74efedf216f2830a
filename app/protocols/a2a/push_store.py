"""Push notification configs of A2A tasks, shared by every replica (Redis) or kept in this
process (memory, without REDIS_URL); and the lease that lets one process deliver a task's
notifications.

Redis keys (under REDIS_KEY_PREFIX): ``a2a:push:<task id>`` a hash, config id -> the config's
JSON (it holds the client's webhook token and credentials: treat the keyspace as secret),
expiring with the task (TASK_RETENTION_SECONDS); ``a2a:push-lease:<task id>`` the id of the
process delivering that task's notifications, for LEASE_SECONDS, renewed while it does.
Who may read a config is decided before the store is asked: the task's owner only.
"""

from __future__ import annotations

import time
from typing import Protocol

from a2a.types import TaskPushNotificationConfig
from redis.asyncio import Redis

from app.protocols.a2a.proto_json import parse, to_json

MAX_CONFIGS_PER_TASK = 10
LEASE_SECONDS = 30

# Take the lease when free, or keep it when it is already ours.
_TAKE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_DROP_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _dump(config: TaskPushNotificationConfig) -> str:
    return to_json(config)


def _load(raw: str | bytes) -> TaskPushNotificationConfig:
    return parse(raw if isinstance(raw, str) else raw.decode(), TaskPushNotificationConfig())


class PushConfigStore(Protocol):
    async def put(self, config: TaskPushNotificationConfig, *, ttl_seconds: int) -> bool:
        """Store (or replace, by id); False when the task has MAX_CONFIGS_PER_TASK others."""
        ...

    async def get(self, task_id: str, config_id: str) -> TaskPushNotificationConfig | None: ...

    async def list(self, task_id: str) -> list[TaskPushNotificationConfig]: ...

    async def delete(self, task_id: str, config_id: str) -> None:
        """Idempotent."""
        ...

    async def take_lease(self, task_id: str, holder: str) -> bool:
        """Deliver this task's notifications (again) for LEASE_SECONDS, unless another holds it."""
        ...

    async def drop_lease(self, task_id: str, holder: str) -> None: ...


class MemoryPushConfigStore:
    def __init__(self) -> None:
        self._configs: dict[str, dict[str, str]] = {}
        self._expiry: dict[str, float] = {}

    def _live(self, task_id: str) -> dict[str, str]:
        now = time.monotonic()
        for expired in [key for key, when in self._expiry.items() if when <= now]:
            self._configs.pop(expired, None)
            self._expiry.pop(expired, None)
        return self._configs.get(task_id, {})

    async def put(self, config: TaskPushNotificationConfig, *, ttl_seconds: int) -> bool:
        configs = self._live(config.task_id)
        if config.id not in configs and len(configs) >= MAX_CONFIGS_PER_TASK:
            return False
        self._configs.setdefault(config.task_id, {})[config.id] = _dump(config)
        self._expiry[config.task_id] = time.monotonic() + ttl_seconds
        return True

    async def get(self, task_id: str, config_id: str) -> TaskPushNotificationConfig | None:
        raw = self._live(task_id).get(config_id)
        return _load(raw) if raw is not None else None

    async def list(self, task_id: str) -> list[TaskPushNotificationConfig]:
        return [_load(raw) for raw in self._live(task_id).values()]

    async def delete(self, task_id: str, config_id: str) -> None:
        self._live(task_id).pop(config_id, None)

    async def take_lease(self, task_id: str, holder: str) -> bool:
        return True  # one process: its notifier registry already runs one per task

    async def drop_lease(self, task_id: str, holder: str) -> None:
        return None


class RedisPushConfigStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._take = redis.register_script(_TAKE_LEASE)
        self._drop = redis.register_script(_DROP_LEASE)

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}a2a:push:{task_id}"

    def _lease(self, task_id: str) -> str:
        return f"{self._prefix}a2a:push-lease:{task_id}"

    async def put(self, config: TaskPushNotificationConfig, *, ttl_seconds: int) -> bool:
        key = self._key(config.task_id)
        # The cap is checked, then written: two concurrent creates may pass it together,
        # which bounds the overshoot by the number of racing requests (a guard, not a quota).
        if not await self._redis.hexists(key, config.id):
            if await self._redis.hlen(key) >= MAX_CONFIGS_PER_TASK:
                return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, config.id, _dump(config))
            pipe.expire(key, ttl_seconds)
            await pipe.execute()
        return True

    async def get(self, task_id: str, config_id: str) -> TaskPushNotificationConfig | None:
        raw = await self._redis.hget(self._key(task_id), config_id)
        return _load(raw) if raw is not None else None

    async def list(self, task_id: str) -> list[TaskPushNotificationConfig]:
        values = await self._redis.hvals(self._key(task_id))
        return [_load(raw) for raw in values]

    async def delete(self, task_id: str, config_id: str) -> None:
        await self._redis.hdel(self._key(task_id), config_id)

    async def take_lease(self, task_id: str, holder: str) -> bool:
        taken = await self._take(keys=[self._lease(task_id)], args=[holder, LEASE_SECONDS * 1000])
        return bool(taken)

    async def drop_lease(self, task_id: str, holder: str) -> None:
        await self._drop(keys=[self._lease(task_id)], args=[holder])


def build_push_store(redis: Redis | None, *, prefix: str) -> PushConfigStore:
    if redis is None:
        return MemoryPushConfigStore()
    return RedisPushConfigStore(redis, prefix=prefix)

"""Where webhook subscriptions are kept: Redis (shared by every replica and worker) or memory.

Redis layout (under the key prefix): ``webhook:{<id>}`` holds the subscription's JSON;
``webhooks:owner:{<owner>}`` the set of an owner's ids; ``webhooks:all`` the set of every id
(its size tells a process whether any subscription exists at all, so runs pay nothing while
none does). Each is written by its own command (three slots on a cluster), the record first
and the sets after when creating, the sets first when deleting: a crash leaves at worst an
id in a set whose record is gone, which readers skip.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from redis.asyncio import Redis

from app.store.keyspace import tag
from app.webhooks.models import Subscription


class SubscriptionStore(Protocol):
    async def create(self, subscription: Subscription) -> None: ...

    async def get(self, subscription_id: str) -> Subscription | None: ...

    async def list(self, owner: str) -> builtins.list[Subscription]:
        """The owner's subscriptions, oldest first."""
        ...

    async def count(self, owner: str) -> int: ...

    async def delete(self, subscription: Subscription) -> None: ...

    async def any(self) -> bool:
        """Whether any subscription exists, for anyone."""
        ...


class MemorySubscriptionStore:
    def __init__(self) -> None:
        self._by_id: dict[str, Subscription] = {}

    async def create(self, subscription: Subscription) -> None:
        self._by_id[subscription.id] = subscription

    async def get(self, subscription_id: str) -> Subscription | None:
        return self._by_id.get(subscription_id)

    async def list(self, owner: str) -> builtins.list[Subscription]:
        found = [s for s in self._by_id.values() if s.owner == owner]
        return sorted(found, key=lambda s: s.created_at)

    async def count(self, owner: str) -> int:
        return sum(s.owner == owner for s in self._by_id.values())

    async def delete(self, subscription: Subscription) -> None:
        self._by_id.pop(subscription.id, None)

    async def any(self) -> bool:
        return bool(self._by_id)


class RedisSubscriptionStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _record(self, subscription_id: str) -> str:
        return f"{self._prefix}webhook:{tag(subscription_id)}"

    def _owner(self, owner: str) -> str:
        return f"{self._prefix}webhooks:owner:{tag(owner)}"

    @property
    def _all(self) -> str:
        return f"{self._prefix}webhooks:all"

    async def create(self, subscription: Subscription) -> None:
        await self._redis.set(self._record(subscription.id), subscription.model_dump_json())
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self._owner(subscription.owner), subscription.id)
            pipe.sadd(self._all, subscription.id)
            await pipe.execute()

    async def get(self, subscription_id: str) -> Subscription | None:
        raw = await self._redis.get(self._record(subscription_id))
        return Subscription.model_validate_json(raw) if raw else None

    async def list(self, owner: str) -> builtins.list[Subscription]:
        ids = sorted(str(member) for member in await self._redis.smembers(self._owner(owner)))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:  # many slots: no MGET
            for subscription_id in ids:
                pipe.get(self._record(subscription_id))
            rows = await pipe.execute()
        found = [Subscription.model_validate_json(row) for row in rows if row]
        return sorted(found, key=lambda s: s.created_at)

    async def count(self, owner: str) -> int:
        return int(await self._redis.scard(self._owner(owner)))

    async def delete(self, subscription: Subscription) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.srem(self._owner(subscription.owner), subscription.id)
            pipe.srem(self._all, subscription.id)
            await pipe.execute()
        await self._redis.delete(self._record(subscription.id))

    async def any(self) -> bool:
        return bool(await self._redis.scard(self._all))

"""Deliveries in Redis: shared by every worker, so they survive any worker's restart.

Layout (under the key prefix): ``webhook:{<subscription>}:delivery:<message>`` holds a
delivery's JSON (expiring WEBHOOK_DELIVERY_RETENTION_SECONDS after its last change);
``webhook:{<subscription>}:deliveries`` is the subscription's log, a sorted set of message ids
by creation time trimmed to the newest LOG_MAX; ``webhooks:due`` is the queue, a sorted set of
``<subscription>/<message>`` scored by when each is due (ms, the workers' clocks). One script
touches one key only (the queue: CLAIM takes what is due and pushes it a lease ahead in one
step, so two workers never take one delivery together); a record and its log share their
subscription's hash tag.
"""

from __future__ import annotations

import builtins
import time

from redis.asyncio import Redis

from app.store.keyspace import tag
from app.webhooks.deliveries import LOG_MAX
from app.webhooks.models import Delivery, DeliveryStatus

CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[3], member)
end
return due
"""
READ_CHUNK = 100


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisDeliveryStore:
    def __init__(self, redis: Redis, *, prefix: str, retention_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retention = retention_seconds
        self._claim = redis.register_script(CLAIM)

    def _record(self, subscription_id: str, message_id: str) -> str:
        return f"{self._prefix}webhook:{tag(subscription_id)}:delivery:{message_id}"

    def _log(self, subscription_id: str) -> str:
        return f"{self._prefix}webhook:{tag(subscription_id)}:deliveries"

    @property
    def _due(self) -> str:
        return f"{self._prefix}webhooks:due"

    async def add(self, deliveries: builtins.list[Delivery]) -> None:
        if not deliveries:
            return
        now = time.time()
        # The records and logs first, the queue last: a queued id always has its record.
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery in deliveries:
                log = self._log(delivery.subscription_id)
                pipe.set(
                    self._record(delivery.subscription_id, delivery.id),
                    delivery.model_dump_json(),
                    ex=self._retention,
                )
                pipe.zadd(log, {delivery.id: _ms(now)})
                pipe.zremrangebyrank(log, 0, -(LOG_MAX + 1))
                pipe.expire(log, self._retention)
            await pipe.execute()
        members = {f"{d.subscription_id}/{d.id}": _ms(now) for d in deliveries}
        await self._redis.zadd(self._due, members)

    async def claim(self, limit: int, *, lease_seconds: float) -> builtins.list[tuple[str, str]]:
        now = time.time()
        members = await self._claim(
            keys=[self._due], args=[_ms(now), limit, _ms(now + lease_seconds)]
        )
        claimed = []
        for member in members:
            subscription_id, _, message_id = str(member).partition("/")
            claimed.append((subscription_id, message_id))
        return claimed

    async def get(self, subscription_id: str, message_id: str) -> Delivery | None:
        raw = await self._redis.get(self._record(subscription_id, message_id))
        return Delivery.model_validate_json(raw) if raw else None

    async def save(self, delivery: Delivery, *, due_in: float | None) -> None:
        member = f"{delivery.subscription_id}/{delivery.id}"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(
                self._record(delivery.subscription_id, delivery.id),
                delivery.model_dump_json(),
                ex=self._retention,
            )
            if due_in is None:
                pipe.zrem(self._due, member)
            else:
                pipe.zadd(self._due, {member: _ms(time.time() + due_in)})
            await pipe.execute()

    async def drop(self, subscription_id: str, message_id: str) -> None:
        await self._redis.zrem(self._due, f"{subscription_id}/{message_id}")

    async def list(
        self, subscription_id: str, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[Delivery], int]:
        ids = [str(m) for m in await self._redis.zrevrange(self._log(subscription_id), 0, -1)]
        if status is None:  # the page only
            total, ids = len(ids), ids[offset : offset + limit]
            return await self._read(subscription_id, ids), total
        matching = [d for d in await self._read(subscription_id, ids) if d.status == status]
        return matching[offset : offset + limit], len(matching)

    async def _read(self, subscription_id: str, ids: builtins.list[str]) -> builtins.list[Delivery]:
        found: builtins.list[Delivery] = []
        for start in range(0, len(ids), READ_CHUNK):  # one slot: MGET, a chunk at a time
            keys = [self._record(subscription_id, i) for i in ids[start : start + READ_CHUNK]]
            rows = await self._redis.mget(keys)
            found += [Delivery.model_validate_json(row) for row in rows if row]
        return found

    async def forget(self, subscription_id: str) -> None:
        await self._redis.delete(self._log(subscription_id))

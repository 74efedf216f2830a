"""Tenant store: one interface, a Redis backend and an in-memory backend.

Redis layout (under the key prefix): ``tenants:{<id>}`` holds the record JSON, ``tenant-ids``
the set of ids (for listing). As with users (app/store/users.py), an id joins the set before
its record is written and leaves it after the record is gone, so the set always names every
tenant; a crash in between leaves an id without a record, which listing skips. The default
tenant is never stored: it always exists and has no policy of its own.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from app.store.keyspace import tag
from app.store.records import TenantRecord


class TenantStore(Protocol):
    async def get(self, tenant_id: str) -> TenantRecord | None: ...

    async def create(self, record: TenantRecord) -> bool:
        """Store a new tenant; False (nothing written) when the id is taken."""
        ...

    async def put(self, record: TenantRecord) -> None:
        """Replace an existing tenant's record."""
        ...

    async def list(self) -> list[TenantRecord]: ...

    async def delete(self, tenant_id: str) -> bool: ...


class MemoryTenantStore:
    def __init__(self) -> None:
        self._tenants: dict[str, TenantRecord] = {}

    async def get(self, tenant_id: str) -> TenantRecord | None:
        return self._tenants.get(tenant_id)

    async def create(self, record: TenantRecord) -> bool:
        if record.id in self._tenants:
            return False
        self._tenants[record.id] = record
        return True

    async def put(self, record: TenantRecord) -> None:
        self._tenants[record.id] = record

    async def list(self) -> list[TenantRecord]:
        return sorted(self._tenants.values(), key=lambda t: t.id)

    async def delete(self, tenant_id: str) -> bool:
        return self._tenants.pop(tenant_id, None) is not None


class RedisTenantStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ids = f"{prefix}tenant-ids"

    def _key(self, tenant_id: str) -> str:
        return f"{self._prefix}tenants:{tag(tenant_id)}"

    async def get(self, tenant_id: str) -> TenantRecord | None:
        raw = await self._redis.get(self._key(tenant_id))
        return TenantRecord.model_validate_json(raw) if raw else None

    async def create(self, record: TenantRecord) -> bool:
        await self._redis.sadd(self._ids, record.id)  # listed first: see the docstring
        return bool(await self._redis.set(self._key(record.id), record.model_dump_json(), nx=True))

    async def put(self, record: TenantRecord) -> None:
        await self._redis.set(self._key(record.id), record.model_dump_json(), xx=True)

    async def list(self) -> list[TenantRecord]:
        ids = sorted(str(member) for member in await self._redis.smembers(self._ids))
        if not ids:
            return []
        # One GET per tenant, pipelined: the records live in many slots (MGET needs one).
        async with self._redis.pipeline(transaction=False) as pipe:
            for tenant_id in ids:
                pipe.get(self._key(tenant_id))
            rows = await pipe.execute()
        return [TenantRecord.model_validate_json(row) for row in rows if row]

    async def delete(self, tenant_id: str) -> bool:
        removed = bool(await self._redis.delete(self._key(tenant_id)))
        await self._redis.srem(self._ids, tenant_id)
        return removed

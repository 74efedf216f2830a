"""Tenant store: one interface, a Redis backend and an in-memory backend.

Redis layout (under the key prefix): ``tenants:{<id>}`` holds the record JSON, ``tenant-ids``
the set of ids (for listing). As with users (app/store/users.py), an id joins the set before
its record is written and leaves it after the record is gone, so the set always names every
tenant; a crash in between leaves an id without a record, which listing skips. The default
tenant is never stored: it always exists and has no policy of its own.

Deleting keeps the record, marked ``retired_at``, for good: a tenant's principals are named by
its id (app/security/principals.py), so a new tenant with a deleted one's id would own what
the old one's principals left (sessions, runs, webhook subscriptions, usage). A retired id is
never made again; ``get`` returns the tombstone and callers treat it as gone.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from app.core.clock import utcnow
from app.store.keyspace import tag
from app.store.records import TenantRecord


class TenantStore(Protocol):
    async def get(self, tenant_id: str) -> TenantRecord | None: ...

    async def create(self, record: TenantRecord) -> bool:
        """Store a new tenant; False (nothing written) when the id is taken or retired."""
        ...

    async def put(self, record: TenantRecord) -> None:
        """Replace an existing tenant's record."""
        ...

    async def list(self) -> list[TenantRecord]:
        """The live tenants (not the retired ones)."""
        ...

    async def delete(self, tenant_id: str) -> bool:
        """Retire a live tenant (its record becomes a tombstone); False when none was live."""
        ...


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
        live = (t for t in self._tenants.values() if t.retired_at is None)
        return sorted(live, key=lambda t: t.id)

    async def delete(self, tenant_id: str) -> bool:
        record = self._tenants.get(tenant_id)
        if record is None or record.retired_at is not None:
            return False
        self._tenants[tenant_id] = retired(record)
        return True


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
        records = [TenantRecord.model_validate_json(row) for row in rows if row]
        return [record for record in records if record.retired_at is None]

    async def delete(self, tenant_id: str) -> bool:
        record = await self.get(tenant_id)
        if record is None or record.retired_at is not None:
            return False
        await self._redis.set(self._key(tenant_id), retired(record).model_dump_json())
        await self._redis.srem(self._ids, tenant_id)
        return True


def retired(record: TenantRecord) -> TenantRecord:
    """The tombstone: id and when, nothing of its policy."""
    return TenantRecord(id=record.id, name=record.name, retired_at=utcnow())

"""API key store: records looked up by keyed hash in one round trip.

Redis layout (under the key prefix): ``apikeys:hash:{<digest>}`` holds the record JSON for the
hot-path lookup; ``apikeys:id:{<id>}`` holds ``<digest> <record JSON>`` for listing and revoking;
``apikeys:ids`` is the set of ids. Revoking deletes the hash entry, so a revoked key fails at once.

Each key carries the hash tag of what it is looked up by, so the three live in different
slots on a cluster and each is written by its own command, in an order whose crash leftovers
never leave a working key that cannot be listed or revoked: creating writes the id entry and
the id set first and the hash entry last; revoking deletes the hash entry first and marks
the id entry after (a crash leaves a dead key still shown live, and revoking it again
finishes the job).
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from app.core.clock import utcnow
from app.store.keyspace import tag
from app.store.records import ApiKeyRecord


class ApiKeyStore(Protocol):
    async def create(self, record: ApiKeyRecord, *, key_hash: str) -> None: ...

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The live (not revoked) key with this hash, if any."""
        ...

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this id, revoked or not (a key that made other keys is checked)."""
        ...

    async def list(self) -> list[ApiKeyRecord]: ...

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Mark revoked; returns the record, or None when no such key exists."""
        ...


class MemoryApiKeyStore:
    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKeyRecord] = {}
        self._by_id: dict[str, tuple[str, ApiKeyRecord]] = {}

    async def create(self, record: ApiKeyRecord, *, key_hash: str) -> None:
        self._by_hash[key_hash] = record
        self._by_id[record.id] = (key_hash, record)

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return self._by_hash.get(key_hash)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        found = self._by_id.get(key_id)
        return found[1] if found else None

    async def list(self) -> list[ApiKeyRecord]:
        return sorted((rec for _, rec in self._by_id.values()), key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        found = self._by_id.get(key_id)
        if found is None:
            return None
        key_hash, record = found
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": utcnow()})
            self._by_id[key_id] = (key_hash, record)
            self._by_hash.pop(key_hash, None)
        return record


class RedisApiKeyStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}apikeys:"

    def _hash_key(self, key_hash: str) -> str:
        return f"{self._prefix}hash:{tag(key_hash)}"

    def _id_key(self, key_id: str) -> str:
        return f"{self._prefix}id:{tag(key_id)}"

    async def create(self, record: ApiKeyRecord, *, key_hash: str) -> None:
        payload = record.model_dump_json()
        # Listable and revocable first, working last: see the module docstring.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._id_key(record.id), f"{key_hash} {payload}")
            pipe.sadd(f"{self._prefix}ids", record.id)
            await pipe.execute()
        await self._redis.set(self._hash_key(key_hash), payload)

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        raw = await self._redis.get(self._hash_key(key_hash))
        return ApiKeyRecord.model_validate_json(raw) if raw else None

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        raw = await self._redis.get(self._id_key(key_id))
        return ApiKeyRecord.model_validate_json(str(raw).split(" ", 1)[1]) if raw else None

    async def list(self) -> list[ApiKeyRecord]:
        # decode_responses=True: the client returns str, though its stubs say bytes | str.
        ids = sorted(str(member) for member in await self._redis.smembers(f"{self._prefix}ids"))
        if not ids:
            return []
        # One GET per key, pipelined: the entries live in many slots (MGET needs one).
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.get(self._id_key(key_id))
            rows = await pipe.execute()
        records = [
            ApiKeyRecord.model_validate_json(str(row).split(" ", 1)[1]) for row in rows if row
        ]
        return sorted(records, key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        raw = await self._redis.get(self._id_key(key_id))
        if raw is None:
            return None
        key_hash, payload = str(raw).split(" ", 1)
        record = ApiKeyRecord.model_validate_json(payload)
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": utcnow()})
            # The key stops working first, then is shown revoked: see the module docstring.
            await self._redis.delete(self._hash_key(key_hash))
            await self._redis.set(self._id_key(key_id), f"{key_hash} {record.model_dump_json()}")
        return record

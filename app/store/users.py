"""User store: one interface, a Redis backend and an in-memory backend."""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from app.store.records import UserRecord


class UserStore(Protocol):
    async def get(self, username: str) -> UserRecord | None: ...

    async def create(self, user: UserRecord, *, overwrite: bool = False) -> bool:
        """Store ``user``; without ``overwrite`` an existing user is kept and False returned."""
        ...


class MemoryUserStore:
    def __init__(self) -> None:
        self._users: dict[str, UserRecord] = {}

    async def get(self, username: str) -> UserRecord | None:
        return self._users.get(username)

    async def create(self, user: UserRecord, *, overwrite: bool = False) -> bool:
        if not overwrite and user.username in self._users:
            return False
        self._users[user.username] = user
        return True


class RedisUserStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}users:"

    async def get(self, username: str) -> UserRecord | None:
        raw = await self._redis.get(self._prefix + username)
        return UserRecord.model_validate_json(raw) if raw else None

    async def create(self, user: UserRecord, *, overwrite: bool = False) -> bool:
        # SET NX makes "first writer wins" atomic across gunicorn workers and replicas.
        stored = await self._redis.set(
            self._prefix + user.username, user.model_dump_json(), nx=not overwrite
        )
        return bool(stored)

"""User store: one interface, a Redis backend and an in-memory backend.

Besides the user records it keeps each user's signed-out tokens (jti -> exp), so the
per-request user check (app/security/revocation.py) reads a user and the tokens it signed
out in one round trip.

Redis layout (under the key prefix): ``users:{<name>}`` holds the record JSON and
``users:{<name>}:signed-out`` a sorted set of jti scored by the token's exp (expired members
are trimmed on every write and ignored on read): one user's keys share its hash tag, so they
live in one slot on a cluster. ``user-names`` is the set of names (for listing), another
entity, so it is written by its own command: a name is added before its record and removed
after it, so the set always names every user (a crash in between leaves a name without a
record, which the listing skips).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import WatchError

from app.store.keyspace import tag
from app.store.records import UserRecord

# Changes one user; the store applies it atomically (a retried read-modify-write).
UserChange = Callable[[UserRecord], UserRecord]

_WATCH_RETRIES = 20
# Outlives every token still valid: ACCESS_TOKEN_EXPIRE_MINUTES is at most a day, the
# leeway at most 300 s.
_SIGNED_OUT_TTL = 86_400 + 300


@dataclass(frozen=True, slots=True)
class UserStatus:
    """What the per-request check needs about one user, read together."""

    user: UserRecord | None
    signed_out: frozenset[str]  # jti of this user's tokens revoked by logout, not yet expired


class UserStore(Protocol):
    async def get(self, username: str) -> UserRecord | None: ...

    async def create(self, user: UserRecord, *, overwrite: bool = False) -> bool:
        """Store ``user``; without ``overwrite`` an existing user is kept and False returned."""
        ...

    async def list(self) -> list[UserRecord]: ...

    async def update(self, username: str, change: UserChange) -> UserRecord | None:
        """Apply ``change`` atomically; the new record, or None when no such user exists."""
        ...

    async def delete(self, username: str) -> UserRecord | None:
        """Remove the user and its signed-out tokens; the removed record, or None."""
        ...

    async def sign_out(self, username: str, jti: str, *, expires_at: float) -> None:
        """Revoke one token of ``username`` until its exp (epoch seconds)."""
        ...

    async def status(self, username: str) -> UserStatus: ...


class MemoryUserStore:
    def __init__(self) -> None:
        self._users: dict[str, UserRecord] = {}
        self._signed_out: dict[str, dict[str, float]] = {}

    async def get(self, username: str) -> UserRecord | None:
        return self._users.get(username)

    async def create(self, user: UserRecord, *, overwrite: bool = False) -> bool:
        if not overwrite and user.username in self._users:
            return False
        self._users[user.username] = user
        return True

    async def list(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda user: user.username)

    async def update(self, username: str, change: UserChange) -> UserRecord | None:
        user = self._users.get(username)
        if user is None:
            return None
        self._users[username] = updated = change(user)
        return updated

    async def delete(self, username: str) -> UserRecord | None:
        self._signed_out.pop(username, None)
        return self._users.pop(username, None)

    async def sign_out(self, username: str, jti: str, *, expires_at: float) -> None:
        now = time.time()
        tokens = self._signed_out.setdefault(username, {})
        for expired in [key for key, exp in tokens.items() if exp <= now]:
            del tokens[expired]
        tokens[jti] = expires_at

    async def status(self, username: str) -> UserStatus:
        now = time.time()
        tokens = self._signed_out.get(username, {})
        return UserStatus(
            user=self._users.get(username),
            signed_out=frozenset(jti for jti, exp in tokens.items() if exp > now),
        )


class RedisUserStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}users:"
        # Outside ``users:`` so no user name can collide with it.
        self._names = f"{prefix}user-names"

    def _key(self, username: str) -> str:
        return self._prefix + tag(username)

    def _signed_out_key(self, username: str) -> str:
        return self._key(username) + ":signed-out"

    async def get(self, username: str) -> UserRecord | None:
        raw = await self._redis.get(self._key(username))
        return UserRecord.model_validate_json(raw) if raw else None

    async def create(self, user: UserRecord, *, overwrite: bool = False) -> bool:
        # Listed before the record exists (see the module docstring), and either way:
        # records written before the name set existed join it here.
        await self._redis.sadd(self._names, user.username)
        # SET NX makes "first writer wins" atomic across gunicorn workers and replicas.
        stored = await self._redis.set(
            self._key(user.username), user.model_dump_json(), nx=not overwrite
        )
        return bool(stored)

    async def list(self) -> list[UserRecord]:
        # decode_responses=True: the client returns str, though its stubs say bytes | str.
        names = sorted(str(name) for name in await self._redis.smembers(self._names))
        if not names:
            return []
        # One GET per user, pipelined: the records live in many slots (MGET needs one).
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(self._key(name))
            rows = await pipe.execute()
        return [UserRecord.model_validate_json(row) for row in rows if row]

    async def update(self, username: str, change: UserChange) -> UserRecord | None:
        key = self._key(username)
        # WATCH/MULTI: two admins changing one user at once must not undo each other
        # (a scope change racing a disable must not re-enable the user).
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if not raw:
                        return None
                    updated = change(UserRecord.model_validate_json(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, updated.model_dump_json())
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue
        raise RuntimeError(f"user {username!r} kept changing; gave up after {_WATCH_RETRIES}")

    async def delete(self, username: str) -> UserRecord | None:
        async with self._redis.pipeline(transaction=True) as pipe:  # the user's slot
            pipe.get(self._key(username))
            pipe.delete(self._key(username), self._signed_out_key(username))
            raw, _ = await pipe.execute()
        # After the record: see the module docstring.
        await self._redis.srem(self._names, username)
        return UserRecord.model_validate_json(raw) if raw else None

    async def sign_out(self, username: str, jti: str, *, expires_at: float) -> None:
        key = self._signed_out_key(username)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {jti: expires_at})
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.expire(key, _SIGNED_OUT_TTL)
            await pipe.execute()

    async def status(self, username: str) -> UserStatus:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key(username))
            pipe.zrangebyscore(self._signed_out_key(username), time.time(), "+inf")
            raw, signed_out = await pipe.execute()
        return UserStatus(
            user=UserRecord.model_validate_json(raw) if raw else None,
            signed_out=frozenset(str(jti) for jti in signed_out),
        )

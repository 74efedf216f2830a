"""Tenants: the directory every request asks (cached per process) and the service that
manages them (the /v1/tenants routes and the `agent-service tenants` CLI).

A tenant is an id (``[a-z0-9][a-z0-9-]{0,31}``), a name and a policy (app/store/records.py
TenantPolicy: rate limit, caps, budgets, allowed agents). Its principals carry it in their ids
(app/security/principals.py), so isolation needs no lookup; the lookup is for the policy and
for refusing the principals of a tenant that does not exist (never made, or deleted).

The directory keeps what it read for the user check's TTL; a change is announced on the
invalidation bus as ``tenant:<id>`` and every process drops its entry at once. When the
store cannot be read, a known entry is used; an unknown tenant then answers 503 (the
authentication middleware's answer for a dependency down).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from redis.exceptions import RedisError

from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.tenancy import TENANT_OWNER
from app.security.invalidation import InvalidationBus
from app.security.principals import DEFAULT_TENANT, Principal, is_tenant_id, split_qualified
from app.security.revocation import CheckUnavailable
from app.security.users import Forget
from app.store.api_keys import ApiKeyStore
from app.store.records import TenantPolicy, TenantRecord, UserRecord
from app.store.tenants import TenantStore
from app.store.users import UserStore

log = structlog.get_logger(__name__)

TENANT_MESSAGE = "tenant:"  # the invalidation bus's prefix for a tenant's change
DEFAULT_RECORD = TenantRecord(id=DEFAULT_TENANT, name="Default tenant")
_MAX_ENTRIES = 10_000
_STORE_ERRORS = (RedisError, OSError, TimeoutError)


class TenantDirectory:
    """A tenant's record by id, read through a per-process cache."""

    def __init__(self, store: TenantStore, *, ttl_seconds: float) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, TenantRecord | None]] = {}
        self._epoch = 0  # bumped by every invalidation: a read overlapping one is not kept

    async def get(self, tenant_id: str) -> TenantRecord | None:
        """The tenant, or None when it does not exist. CheckUnavailable when unreadable."""
        if tenant_id == DEFAULT_TENANT:
            return DEFAULT_RECORD
        cached = self._entries.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        epoch = self._epoch
        try:
            record = live(await self._store.get(tenant_id))
        except _STORE_ERRORS as exc:
            if cached is not None:  # what is known, past its TTL
                return cached[1]
            log.warning("tenant_lookup_failed", tenant=tenant_id, error=type(exc).__name__)
            raise CheckUnavailable("the tenant store is unavailable") from None
        if epoch == self._epoch:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[tenant_id] = (time.monotonic() + self._ttl, record)
        return record

    # The invalidation bus calls these for every message (principal ids too: ignored here).
    def invalidate(self, message: str) -> None:
        if message.startswith(TENANT_MESSAGE):
            self._epoch += 1
            self._entries.pop(message.removeprefix(TENANT_MESSAGE), None)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()


class TenantService:
    def __init__(
        self,
        *,
        store: TenantStore,
        users: UserStore,
        api_keys: ApiKeyStore,
        bus: InvalidationBus,
        on_deleted: Forget | None = None,
    ) -> None:
        self._store = store
        self._users = users
        self._api_keys = api_keys
        self._bus = bus
        self._on_deleted = on_deleted  # as UserService's: webhook subscriptions, by owner

    async def create(self, tenant_id: str, *, name: str, policy: TenantPolicy) -> TenantRecord:
        if not is_tenant_id(tenant_id) or tenant_id == DEFAULT_TENANT:
            raise Unprocessable(
                "id: 1-32 lowercase letters, digits or '-', starting with a letter or digit, "
                f"and not {DEFAULT_TENANT!r} (it always exists)",
                code="invalid_tenant_id",
            )
        record = TenantRecord(id=tenant_id, name=name, policy=policy)
        if not await self._store.create(record):
            if live(await self._store.get(tenant_id)) is None:
                raise Conflict(
                    f"The id {tenant_id!r} belonged to a deleted tenant: ids are never used "
                    "again (what its principals left must stay theirs). Choose another.",
                    code="tenant_id_retired",
                )
            raise Conflict(f"A tenant {tenant_id!r} exists.", code="tenant_exists")
        await self._bus.publish(TENANT_MESSAGE + tenant_id)  # a cached "does not exist"
        return record

    async def list(self) -> list[TenantRecord]:
        return await self._store.list()

    async def get(self, tenant_id: str) -> TenantRecord:
        if tenant_id == DEFAULT_TENANT:
            return DEFAULT_RECORD
        record = live(await self._store.get(tenant_id))
        if record is None:
            raise NotFound(f"No tenant {tenant_id!r}.", code="tenant_not_found")
        return record

    async def update(
        self, tenant_id: str, *, name: str | None, policy: TenantPolicy | None
    ) -> TenantRecord:
        if tenant_id == DEFAULT_TENANT:
            raise Conflict(
                "The default tenant follows the deployment's settings; it has no record.",
                code="tenant_default",
            )
        current = await self.get(tenant_id)
        changes: dict[str, object] = {"updated_at": utcnow()}
        if name is not None:
            changes["name"] = name
        if policy is not None:
            changes["policy"] = policy
        record = current.model_copy(update=changes)
        await self._store.put(record)
        await self._bus.publish(TENANT_MESSAGE + tenant_id)
        return record

    async def delete(self, tenant_id: str) -> None:
        """The tenant's principals are refused at once on every process; its users are
        deleted and its API keys revoked; its id is retired for good (never made again), so
        nobody can ever be one of its principals. What they owned expires with its own
        retention, unreachable meanwhile."""
        if tenant_id == DEFAULT_TENANT:
            raise Conflict("The default tenant cannot be deleted.", code="tenant_default")
        if not await self._store.delete(tenant_id):
            raise NotFound(f"No tenant {tenant_id!r}.", code="tenant_not_found")
        await self._bus.publish(TENANT_MESSAGE + tenant_id)
        gone = [TENANT_OWNER + tenant_id]  # its tenant-wide webhook subscriptions too
        for user in users_of(tenant_id, await self._users.list()):
            await self._users.delete(user.username)
            gone.append(Principal.for_user(user.username).id)
            await self._bus.publish(gone[-1])
        for key in await self._api_keys.list():
            if key.tenant == tenant_id and key.revoked_at is None:
                await self._api_keys.revoke(key.id)
                gone.append(Principal.for_api_key(key.id, name=key.name, tenant=key.tenant).id)
                await self._bus.publish(gone[-1])
        if self._on_deleted is not None:
            for owner in gone:
                await self._on_deleted(owner)
        log.info("tenant_deleted", tenant=tenant_id)


def live(record: TenantRecord | None) -> TenantRecord | None:
    """A stored tenant that has not been deleted (a retired id's tombstone is None)."""
    return record if record is not None and record.retired_at is None else None


def users_of(tenant_id: str, users: Iterable[UserRecord]) -> list[UserRecord]:
    return [user for user in users if tenant_of_name(user.username) == tenant_id]


def tenant_of_name(username: str) -> str | None:
    """The tenant a stored username belongs to; None for a malformed one."""
    try:
        return split_qualified(username)[0]
    except ValueError:
        return None

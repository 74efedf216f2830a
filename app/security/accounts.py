"""Users and API keys: bootstrap, password login, key creation and revocation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog

from app.core.config import Settings
from app.security import api_keys as api_key_format
from app.security.invalidation import InvalidationBus
from app.security.passwords import PasswordHasher
from app.security.principals import DEFAULT_TENANT, Principal
from app.security.scopes import Scope
from app.store.api_keys import ApiKeyStore
from app.store.records import ApiKeyRecord, UserRecord, now_to_the_millisecond
from app.store.users import UserStore

log = structlog.get_logger(__name__)


async def bootstrap_admin(
    *, settings: Settings, users: UserStore, hasher: PasswordHasher, bus: InvalidationBus
) -> str | None:
    """Make sure the admin exists. Returns a generated password when one was made (dev only).

    With ADMIN_PASSWORD set, a rotated secret takes effect: the stored hash is replaced and
    the admin's earlier tokens are revoked; the same secret leaves the record untouched (a
    restart revokes nothing). Unset in development, a random password is generated once:
    SET NX means one gunicorn worker or replica wins, and only the winner prints it. Unset
    in production: no admin.
    """
    username = settings.ADMIN_USERNAME
    if settings.ADMIN_PASSWORD is not None:
        password = settings.ADMIN_PASSWORD.get_secret_value()
        existing = await users.get(username)
        if existing is None:
            await users.create(_new_admin(username, await hasher.hash(password)))
        elif await hasher.verify(password, existing.password_hash):
            await users.create(existing)  # a no-op write that (re)joins the listing index
        else:
            password_hash = await hasher.hash(password)
            changed_at = now_to_the_millisecond()
            await users.update(
                username,
                lambda user: user.model_copy(
                    update={"password_hash": password_hash, "credentials_changed_at": changed_at}
                ),
            )
            await bus.publish(Principal.for_user(username).id)
            log.info("admin_password_rotated", username=username)
        return None
    if settings.is_production:
        log.warning("admin_bootstrap_skipped", reason="ADMIN_PASSWORD is not set")
        return None
    if await users.get(username) is not None:
        return None
    password = secrets.token_urlsafe(18)
    record = _new_admin(username, await hasher.hash(password))
    return password if await users.create(record) else None


def _new_admin(username: str, password_hash: str) -> UserRecord:
    now = now_to_the_millisecond()
    return UserRecord(
        username=username,
        password_hash=password_hash,
        scopes=list(Scope),
        created_at=now,
        credentials_changed_at=now,
    )


async def authenticate_user(
    *, users: UserStore, hasher: PasswordHasher, username: str, password: str
) -> UserRecord | None:
    user = await users.get(username)
    # Verify even for unknown users (against a dummy hash) so timing does not reveal names.
    ok = await hasher.verify(password, user.password_hash if user else None)
    if not ok or user is None or user.disabled:
        return None
    return user


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    record: ApiKeyRecord
    plaintext: str


async def create_api_key(
    *,
    store: ApiKeyStore,
    pepper: bytes,
    name: str,
    scopes: frozenset[str],
    created_by: str,
    expires_at: datetime | None = None,
    tenant: str = DEFAULT_TENANT,
) -> CreatedApiKey:
    new_key = api_key_format.generate_api_key()
    record = ApiKeyRecord(
        id=new_key.key_id,
        name=name,
        prefix=new_key.display_prefix,
        scopes=sorted(scopes),
        created_by=created_by,
        expires_at=expires_at,
        tenant=tenant,
    )
    digest = api_key_format.hash_api_key(new_key.plaintext, pepper=pepper)
    await store.create(record, key_hash=digest)
    return CreatedApiKey(record=record, plaintext=new_key.plaintext)


async def revoke_api_key(
    *, store: ApiKeyStore, bus: InvalidationBus, key_id: str
) -> ApiKeyRecord | None:
    """Revoke at once; keys this key made stop with it on every process (announced)."""
    record = await store.revoke(key_id)
    if record is not None:
        await bus.publish(principal_for_key(record).id)
    return record


def principal_for_user(user: UserRecord) -> Principal:
    return Principal.for_user(user.username, user.scopes)


def principal_for_key(record: ApiKeyRecord) -> Principal:
    return Principal.for_api_key(
        record.id, name=record.name, scopes=record.scopes, tenant=record.tenant
    )

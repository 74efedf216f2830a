"""Users and API keys: bootstrap, password login, key creation. Keyword-only services."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog

from app.core.config import Settings
from app.security import api_keys as api_key_format
from app.security.passwords import PasswordHasher
from app.security.principals import Principal
from app.security.scopes import Scope
from app.store.api_keys import ApiKeyStore
from app.store.records import ApiKeyRecord, UserRecord
from app.store.users import UserStore

log = structlog.get_logger(__name__)


async def bootstrap_admin(
    *, settings: Settings, users: UserStore, hasher: PasswordHasher
) -> str | None:
    """Make sure the admin exists. Returns a generated password when one was made (dev only).

    With ADMIN_PASSWORD set, the stored hash is replaced so a rotated secret takes effect.
    Unset in development, a random password is generated once: SET NX means one gunicorn
    worker or replica wins, and only the winner prints it. Unset in production: no admin.
    """
    username = settings.ADMIN_USERNAME
    if settings.ADMIN_PASSWORD is not None:
        password_hash = await hasher.hash(settings.ADMIN_PASSWORD.get_secret_value())
        record = UserRecord(username=username, password_hash=password_hash, scopes=list(Scope))
        await users.create(record, overwrite=True)
        return None
    if settings.is_production:
        log.warning("admin_bootstrap_skipped", reason="ADMIN_PASSWORD is not set")
        return None
    if await users.get(username) is not None:
        return None
    password = secrets.token_urlsafe(18)
    record = UserRecord(
        username=username, password_hash=await hasher.hash(password), scopes=list(Scope)
    )
    return password if await users.create(record) else None


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
    *, store: ApiKeyStore, settings: Settings, name: str, scopes: frozenset[str], created_by: str
) -> CreatedApiKey:
    new_key = api_key_format.generate_api_key()
    record = ApiKeyRecord(
        id=new_key.key_id,
        name=name,
        prefix=new_key.display_prefix,
        scopes=sorted(scopes),
        created_by=created_by,
    )
    digest = api_key_format.hash_api_key(new_key.plaintext, pepper=settings.api_key_pepper)
    await store.create(record, key_hash=digest)
    return CreatedApiKey(record=record, plaintext=new_key.plaintext)


def principal_for_user(user: UserRecord) -> Principal:
    return Principal.for_user(user.username, user.scopes)

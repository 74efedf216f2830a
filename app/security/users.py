"""Managing users: create, list, scopes, disable/enable, delete, passwords, revocation.

One service for the admin routes (app/api/users.py) and the `agent-service users` CLI. Every
change that must end existing tokens (a password set, a disable, revoke-all) moves
``credentials_changed_at`` to now; every change is announced on the invalidation bus so each
process drops its cached view at once. Errors are AppErrors with stable codes, shown as
problem+json by the API and as one line by the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable

from app.core.errors import Conflict, NotFound, Unprocessable
from app.security.invalidation import InvalidationBus
from app.security.passwords import PasswordHasher, PasswordTooLong, check_password_policy
from app.security.principals import DEFAULT_TENANT, Principal, qualified, split_qualified
from app.security.scopes import Scope
from app.store.api_keys import ApiKeyStore
from app.store.records import UserRecord, now_to_the_millisecond
from app.store.users import UserChange, UserStore

# Called with a principal id that is gone for good (app/services.py forget_principal).
Forget = Callable[[str], Awaitable[None]]

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)


def _not_found(username: str) -> NotFound:
    return NotFound(f"No user named {username!r}.", code="user_not_found")


class UserService:
    def __init__(
        self,
        *,
        users: UserStore,
        api_keys: ApiKeyStore,
        hasher: PasswordHasher,
        bus: InvalidationBus,
        on_deleted: Forget | None = None,
    ) -> None:
        self._users = users
        self._api_keys = api_keys
        self._hasher = hasher
        self._bus = bus
        # What else a deleted principal leaves that a same-named successor must not get
        # (its webhook subscriptions: app/services.py forget_principal).
        self._on_deleted = on_deleted

    async def create(
        self,
        username: str,
        *,
        password: str,
        scopes: Iterable[str],
        tenant: str = DEFAULT_TENANT,
    ) -> UserRecord:
        """``username`` is the name within ``tenant``; the record's is qualified by it
        (``<tenant>/<name>``, what the user signs in with)."""
        if not _USERNAME.match(username):
            raise Unprocessable(
                "username: 1-64 letters, digits or _.@- , starting with a letter or digit",
                code="invalid_username",
            )
        scopes = refuse_admin_outside_default(tenant, scopes)
        password_hash = await self._hash(password, username=username)
        username = qualified(tenant, username)
        now = now_to_the_millisecond()
        record = UserRecord(
            username=username,
            password_hash=password_hash,
            scopes=sorted(set(scopes)),
            created_at=now,
            credentials_changed_at=now,
        )
        if not await self._users.create(record):
            raise Conflict(f"A user named {username!r} exists.", code="user_exists")
        await self._bus.publish(Principal.for_user(username).id)  # a same-named earlier user
        return record

    async def list(self) -> list[UserRecord]:
        return await self._users.list()

    async def get(self, username: str) -> UserRecord:
        user = await self._users.get(username)
        if user is None:
            raise _not_found(username)
        return user

    async def set_scopes(self, username: str, scopes: Iterable[str]) -> UserRecord:
        tenant = split_qualified(username)[0]
        wanted = sorted(set(refuse_admin_outside_default(tenant, scopes)))
        return await self._change(username, lambda user: user.model_copy(update={"scopes": wanted}))

    async def disable(self, username: str) -> UserRecord:
        return await self._change(
            username,
            lambda user: user.model_copy(
                update={"disabled": True, "credentials_changed_at": now_to_the_millisecond()}
            ),
        )

    async def enable(self, username: str) -> UserRecord:
        # Tokens from before the disable stay refused: the disable moved the change time.
        return await self._change(
            username, lambda user: user.model_copy(update={"disabled": False})
        )

    async def revoke_tokens(self, username: str) -> UserRecord:
        return await self._change(
            username,
            lambda user: user.model_copy(
                update={"credentials_changed_at": now_to_the_millisecond()}
            ),
        )

    async def set_password(self, username: str, password: str) -> UserRecord:
        password_hash = await self._hash(password, username=username)
        return await self._change(
            username,
            lambda user: user.model_copy(
                update={
                    "password_hash": password_hash,
                    "credentials_changed_at": now_to_the_millisecond(),
                }
            ),
        )

    async def delete(self, username: str) -> UserRecord:
        user = await self._users.delete(username)
        if user is None:
            raise _not_found(username)
        principal_id = Principal.for_user(username).id
        # Its keys are revoked for good: a later user of the same name must not inherit them.
        for record in await self._api_keys.list():
            if record.created_by == principal_id and record.revoked_at is None:
                await self._api_keys.revoke(record.id)
                key = Principal.for_api_key(record.id, name=record.name, tenant=record.tenant)
                await self._bus.publish(key.id)
        await self._bus.publish(principal_id)
        if self._on_deleted is not None:
            await self._on_deleted(principal_id)
        return user

    async def sign_out(self, username: str, jti: str, *, expires_at: float) -> None:
        """Revoke one token (logout) until its exp."""
        await self._users.sign_out(username, jti, expires_at=expires_at)
        await self._bus.publish(Principal.for_user(username).id)

    async def _change(self, username: str, change: UserChange) -> UserRecord:
        updated = await self._users.update(username, change)
        if updated is None:
            raise _not_found(username)
        await self._bus.publish(Principal.for_user(username).id)
        return updated

    async def _hash(self, password: str, *, username: str) -> str:
        try:
            check_password_policy(password, username=username.rpartition("/")[2])
        except PasswordTooLong as exc:
            raise Unprocessable(str(exc), code="password_too_long") from None
        except ValueError as exc:
            raise Unprocessable(str(exc), code="weak_password") from None
        return await self._hasher.hash(password)


def refuse_admin_outside_default(tenant: str, scopes: Iterable[str]) -> list[str]:
    """``admin`` reaches every tenant: only the default tenant's principals may hold it."""
    wanted = list(scopes)
    if tenant != DEFAULT_TENANT and Scope.ADMIN in wanted:
        raise Unprocessable(
            "A tenant's principals cannot hold 'admin' (it reaches every tenant); "
            "use 'tenant:admin'.",
            code="scope_not_allowed",
        )
    return wanted

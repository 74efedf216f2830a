"""The per-request check that a verified credential's user may still act.

A signature proves who a token was issued to, not that the user still may act. On every
request the user behind a token (or behind an API key's creator) is looked up here:

- a deleted or disabled user is refused;
- a token issued before the user's ``credentials_changed_at`` (password set, disable,
  revoke-all) is refused;
- a token the user signed out (its ``jti``) is refused;
- a token keeps only the scopes its user still holds.

Each process keeps what it read for USER_CHECK_TTL_SECONDS, so a hit costs a dict lookup and
no Redis round trip. Nothing is shared between replicas: a change is published on Redis
pub/sub (app/security/invalidation.py) and every process drops its entry at once; the TTL
only bounds how long a missed message could matter (and the cache is cleared whenever the
subscription is re-established).

When the store cannot be read (Redis down, or its breaker open), what is known is used: an
entry that says "refused" still refuses. Otherwise USER_CHECK_FAIL_OPEN decides: accept the
verified credential (true, the default: signature and exp still hold) or answer 503.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from redis.exceptions import RedisError

from app.core.circuit_breaker import CircuitBreaker
from app.core.clock import utcnow
from app.security.principals import Principal
from app.security.tokens import VerifiedToken
from app.store.api_keys import ApiKeyStore
from app.store.records import ApiKeyRecord, to_millis
from app.store.users import UserStore

log = structlog.get_logger(__name__)

_USER = "user:"
_KEY = "key:"
_MAX_ENTRIES = 50_000
_MAX_CREATOR_DEPTH = 8  # an API key made by a key made by a key ... ends somewhere
_STORE_ERRORS = (RedisError, OSError, TimeoutError)


class CredentialRevoked(Exception):
    """The credential verified but may no longer be used (answered 401 ``code``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class CheckUnavailable(ConnectionError):
    """The store could not be read and nothing known refuses; USER_CHECK_FAIL_OPEN=false.
    An OSError, so the authentication middleware answers 503 as for any dependency down."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One principal as this process last read it: a user, or an API key (as a creator)."""

    fresh_until: float  # monotonic
    exists: bool
    disabled: bool = False
    changed_ms: int | None = None  # credentials_changed_at, epoch ms
    scopes: frozenset[str] = frozenset()
    signed_out: frozenset[str] = frozenset()
    expires_at: datetime | None = None  # keys only
    created_by: str = ""  # keys only
    unconfirmed: bool = False  # a stale entry served because the store could not be read


class UserCheck:
    def __init__(
        self,
        *,
        users: UserStore,
        api_keys: ApiKeyStore,
        ttl_seconds: float,
        fail_open: bool,
    ) -> None:
        self._users = users
        self._api_keys = api_keys
        self._ttl = ttl_seconds
        self._fail_open = fail_open
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[_Entry]] = {}
        # Bumped by every invalidation: a read that started before one is not cached.
        self._epoch = 0
        self._breaker = CircuitBreaker(failure_threshold=3, reset_timeout=2.0)

    # --- invalidation (app/security/invalidation.py calls these) ---------------------------

    def invalidate(self, principal_id: str) -> None:
        self._epoch += 1
        self._entries.pop(principal_id, None)
        self._inflight.pop(principal_id, None)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._inflight.clear()

    # --- the checks ------------------------------------------------------------------------

    async def check_token(self, verified: VerifiedToken) -> Principal:
        """The principal this token may act as now; CredentialRevoked when it may not."""
        principal = verified.principal
        entry = self._entries.get(principal.id)
        if entry is None or entry.fresh_until <= time.monotonic():
            entry = await self._read(principal.id, stale=entry)
            if entry is None:  # unknown and unreadable, failing open
                return principal
        if not entry.exists:
            raise CredentialRevoked("token_revoked", "The user of this token no longer exists.")
        if entry.disabled:
            raise CredentialRevoked("token_revoked", "The user of this token is disabled.")
        if entry.changed_ms is not None and verified.issued_at_ms < entry.changed_ms:
            raise CredentialRevoked(
                "token_revoked",
                "The token was issued before the user's credentials changed; sign in again.",
            )
        if verified.jti in entry.signed_out:
            raise CredentialRevoked("token_revoked", "The token was signed out.")
        self._accept_unconfirmed(entry)
        if principal.scopes <= entry.scopes:
            return principal
        return Principal.for_user(principal.name, principal.scopes & entry.scopes)

    async def check_api_key(self, record: ApiKeyRecord) -> None:
        """An API key stops working when it expires and when whoever made it (a user, or a
        key, recursively) is deleted, disabled, revoked or expired (deleting a user also
        revokes its keys for good, app/security/users.py). Keys made by an operator (``cli``)
        or an external identity have no creator to check here."""
        now = utcnow()
        if record.expires_at is not None and now >= record.expires_at:
            raise CredentialRevoked("api_key_expired", "The API key has expired.")
        creator = record.created_by
        for _ in range(_MAX_CREATOR_DEPTH):
            if not creator.startswith((_USER, _KEY)):
                return
            entry = self._entries.get(creator)
            if entry is None or entry.fresh_until <= time.monotonic():
                entry = await self._read(creator, stale=entry)
                if entry is None:
                    return
            if not entry.exists or entry.disabled:
                raise CredentialRevoked(
                    "api_key_revoked",
                    "The API key was made by a user or key that is disabled, deleted or revoked.",
                )
            if entry.expires_at is not None and now >= entry.expires_at:
                raise CredentialRevoked(
                    "api_key_revoked", "The API key was made by a key that has expired."
                )
            self._accept_unconfirmed(entry)
            if creator.startswith(_USER):
                return
            creator = entry.created_by
        raise CredentialRevoked("api_key_revoked", "The API key's chain of creators is too long.")

    # --- reading ---------------------------------------------------------------------------

    def _accept_unconfirmed(self, entry: _Entry) -> None:
        # Known facts refuse whatever the store's state; accepting needs a confirmed entry,
        # unless failing open.
        if entry.unconfirmed and not self._fail_open:
            raise CheckUnavailable("the user store is unavailable")

    async def _read(self, principal_id: str, *, stale: _Entry | None) -> _Entry | None:
        """A fresh entry; on a store failure the stale one (unconfirmed), None (unknown,
        failing open) or CheckUnavailable (unknown, failing closed)."""
        if self._breaker.allow():
            try:
                entry = await self._shared_read(principal_id)
            except _STORE_ERRORS as exc:
                if self._breaker.record_failure():
                    log.warning("user_check_store_down", error=type(exc).__name__)
            else:
                self._breaker.record_success()
                return entry
        if stale is not None:
            return replace(stale, unconfirmed=True)
        if self._fail_open:
            return None
        raise CheckUnavailable("the user store is unavailable")

    async def _shared_read(self, principal_id: str) -> _Entry:
        # Single flight: a burst of requests for one user after an invalidation is one read.
        pending = self._inflight.get(principal_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(principal_id))
            self._inflight[principal_id] = pending
            pending.add_done_callback(lambda done: self._forget(principal_id, done))
        return await asyncio.shield(pending)

    def _forget(self, principal_id: str, done: asyncio.Future[_Entry]) -> None:
        if self._inflight.get(principal_id) is done:
            del self._inflight[principal_id]
        if not done.cancelled():
            done.exception()  # retrieved here, so an unawaited failure is not logged as lost

    async def _fetch(self, principal_id: str) -> _Entry:
        epoch = self._epoch
        fresh_until = time.monotonic() + self._ttl
        if principal_id.startswith(_USER):
            entry = await self._fetch_user(principal_id.removeprefix(_USER), fresh_until)
        else:
            # ``key:<tenant>/<id>`` outside the default tenant; the store knows the bare id.
            entry = await self._fetch_key(Principal.from_id(principal_id).key_id, fresh_until)
        # Kept even with a TTL of 0: a stale entry is still what is known if the store fails.
        if epoch == self._epoch:  # nothing changed while we read
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[principal_id] = entry
        return entry

    async def _fetch_user(self, username: str, fresh_until: float) -> _Entry:
        status = await self._users.status(username)
        user = status.user
        if user is None:
            return _Entry(fresh_until=fresh_until, exists=False)
        changed = user.credentials_changed_at
        return _Entry(
            fresh_until=fresh_until,
            exists=True,
            disabled=user.disabled,
            changed_ms=to_millis(changed) if changed is not None else None,
            scopes=frozenset(user.scopes),
            signed_out=status.signed_out,
        )

    async def _fetch_key(self, key_id: str, fresh_until: float) -> _Entry:
        record = await self._api_keys.get(key_id)
        if record is None:
            return _Entry(fresh_until=fresh_until, exists=False)
        return _Entry(
            fresh_until=fresh_until,
            exists=True,
            disabled=record.revoked_at is not None,
            scopes=frozenset(record.scopes),
            expires_at=record.expires_at,
            created_by=record.created_by,
        )

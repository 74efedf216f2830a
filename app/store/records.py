"""Records the auth stores hold; plain pydantic models, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from app.core.clock import utcnow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch (exact integer arithmetic, no float rounding): how
    a token's ``iat`` and a credential change compare."""
    return (moment - _EPOCH) // _MILLISECOND


def now_to_the_millisecond() -> datetime:
    """utcnow() truncated to milliseconds, the precision ``iat`` is issued with: a token
    issued right after a change compares equal or later, never earlier."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class UserRecord(BaseModel):
    username: str
    password_hash: str
    scopes: list[str]
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    # Tokens issued before this are refused: set on create, password change, disable and
    # revoke-all. None only on records written before it existed (nothing to compare).
    credentials_changed_at: datetime | None = None


class ApiKeyRecord(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    expires_at: datetime | None = None

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
    tenant: str = "default"  # the tenant its principal belongs to (app/security/principals.py)


class TenantPolicy(BaseModel):
    """What a tenant's principals may do; None = the deployment's setting applies."""

    rate_limit: str | None = None  # replaces RATE_LIMIT_DEFAULT for each of its principals
    max_concurrent_runs: int | None = None  # per principal, replaces the setting
    max_active_tasks: int | None = None  # per principal, replaces the setting
    budget_tokens_per_run: int | None = None
    budget_tokens_per_day: int | None = None  # per principal
    budget_tokens_per_month: int | None = None  # per principal
    budget_usd_per_day: float | None = None  # per principal, priced by MODEL_PRICES
    budget_usd_per_month: float | None = None
    pool_tokens_per_day: int | None = None  # the whole tenant's, every principal's spend
    pool_tokens_per_month: int | None = None
    allowed_agents: list[str] | None = None  # None: every agent the deployment serves


class TenantRecord(BaseModel):
    id: str
    name: str
    policy: TenantPolicy = Field(default_factory=TenantPolicy)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set when deleted: the record stays as a tombstone so the id is never made again (what
    # the deleted tenant's principals owned stays theirs, unreachable).
    retired_at: datetime | None = None

"""Bodies of the tenant routes (/v1/tenants)."""

from __future__ import annotations

from datetime import datetime

from limits import parse
from pydantic import BaseModel, Field, field_validator

from app.security.principals import TENANT_PATTERN
from app.store.records import TenantPolicy, TenantRecord

_UNSET = "null = the deployment's setting."


class TenantPolicyBody(BaseModel):
    """What a tenant's principals may do. Every field null = the deployment's setting."""

    rate_limit: str | None = Field(
        None,
        max_length=64,
        description="Requests per principal, e.g. `600/minute` (replaces RATE_LIMIT_REQUESTS "
        "per RATE_LIMIT_WINDOW; RATE_LIMIT_ROUTES still apply). " + _UNSET,
        examples=["600/minute"],
    )
    max_concurrent_runs: int | None = Field(
        None, ge=0, description="Foreground runs at once per principal, 0 = no cap. " + _UNSET
    )
    max_active_tasks: int | None = Field(
        None, ge=0, description="Tasks queued or running per principal, 0 = no cap. " + _UNSET
    )
    budget_tokens_per_run: int | None = Field(None, ge=0, description="0 = none. " + _UNSET)
    budget_tokens_per_day: int | None = Field(
        None, ge=0, description="Per principal, 0 = none. " + _UNSET
    )
    budget_tokens_per_month: int | None = Field(
        None, ge=0, description="Per principal, 0 = none. " + _UNSET
    )
    budget_usd_per_day: float | None = Field(
        None,
        ge=0,
        description="Per principal, US dollars priced by MODEL_PRICES, 0 = none. " + _UNSET,
    )
    budget_usd_per_month: float | None = Field(
        None, ge=0, description="Per principal, 0 = none. " + _UNSET
    )
    pool_tokens_per_day: int | None = Field(
        None,
        ge=0,
        description="The whole tenant's daily tokens, shared by all its principals; "
        "null or 0 = none.",
    )
    pool_tokens_per_month: int | None = Field(
        None, ge=0, description="The whole tenant's monthly tokens; null or 0 = none."
    )
    allowed_agents: list[str] | None = Field(
        None,
        max_length=1000,
        description="The agents its principals may see and run; null = every agent served.",
    )

    @field_validator("rate_limit")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value)
            except ValueError:
                raise ValueError("not a rate limit: write e.g. '600/minute'") from None
        return value

    def record(self) -> TenantPolicy:
        return TenantPolicy(**self.model_dump())


class TenantCreate(BaseModel):
    id: str = Field(
        pattern=TENANT_PATTERN,
        description="1-32 lowercase letters, digits or '-'; part of its principals' ids "
        "(`user:<tenant>/<name>`, `key:<tenant>/<id>`), never changed. `default` is taken.",
        examples=["acme"],
    )
    name: str = Field(min_length=1, max_length=200, examples=["Acme Corp"])
    policy: TenantPolicyBody = Field(default_factory=TenantPolicyBody)


class TenantUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    policy: TenantPolicyBody | None = Field(
        None, description="Replaces the whole policy (send every field you want kept)."
    )


class TenantInfo(BaseModel):
    id: str
    name: str
    policy: TenantPolicyBody
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: TenantRecord) -> TenantInfo:
        return cls(
            id=record.id,
            name=record.name,
            policy=TenantPolicyBody(**record.policy.model_dump()),
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class TenantList(BaseModel):
    items: list[TenantInfo]
    total: int

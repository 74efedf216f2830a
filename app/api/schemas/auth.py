"""Request and response bodies of the auth and user-management routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from app.core.clock import utcnow
from app.security.principals import TENANT_PATTERN
from app.security.scopes import Scope
from app.security.users import USERNAME_PATTERN

MAX_API_KEY_LIFETIME_SECONDS = 10 * 365 * 86_400


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str


class PrincipalResponse(BaseModel):
    id: str
    kind: str
    name: str
    scopes: list[str]
    tenant: str


def _unique(value: list[Scope]) -> list[Scope]:
    return sorted(set(value))


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w .:@-]+$")
    tenant_id: str | None = Field(
        None,
        pattern=TENANT_PATTERN,
        description="The tenant the key's principal belongs to (admin only; a tenant:admin's "
        "keys are of its own). Unset = the caller's tenant.",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_at: AwareDatetime | None = Field(
        None, description="When the key stops working (with a timezone); unset = never."
    )
    expires_in: int | None = Field(
        None,
        ge=1,
        le=MAX_API_KEY_LIFETIME_SECONDS,
        strict=True,  # the schema says integer: "60" is a 422, not coerced
        description="Seconds from now until the key stops working; instead of `expires_at`.",
    )

    _unique_scopes = field_validator("scopes")(_unique)

    @model_validator(mode="after")
    def _one_expiry_in_the_future(self) -> ApiKeyCreate:
        if self.expires_at is not None and self.expires_in is not None:
            raise ValueError("send expires_at or expires_in, not both")
        if self.expires_at is not None and self.expires_at <= utcnow():
            raise ValueError("expires_at must be in the future")
        return self

    def expiry(self) -> datetime | None:
        if self.expires_in is not None:
            return utcnow() + timedelta(seconds=self.expires_in)
        return self.expires_at.astimezone(UTC) if self.expires_at is not None else None


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="First characters of the key, to recognise it.")
    scopes: list[str]
    created_by: str = Field(
        description="Who made it; the key stops working when that user is disabled or deleted."
    )
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="When it stops working; null = never.")
    tenant: str = "default"


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="The API key. Shown once: store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyInfo]
    total: int


# --- users ---------------------------------------------------------------------------------


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    tenant_id: str | None = Field(
        None,
        pattern=TENANT_PATTERN,
        description="The tenant it belongs to (admin only; a tenant:admin's users are of its "
        "own). It then signs in as `<tenant_id>/<username>`. Unset = the default tenant.",
    )
    password: str = Field(
        max_length=1024,
        description="At least 12 characters, at most 72 bytes (bcrypt), not the username.",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))

    _unique_scopes = field_validator("scopes")(_unique)


class UserScopesUpdate(BaseModel):
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))

    _unique_scopes = field_validator("scopes")(_unique)


class PasswordSet(BaseModel):
    password: str = Field(
        max_length=1024,
        description="At least 12 characters, at most 72 bytes (bcrypt), not the username.",
    )


class UserInfo(BaseModel):
    username: str = Field(description="What it signs in with: `<tenant>/<name>` in a tenant.")
    tenant: str
    scopes: list[str]
    disabled: bool
    created_at: datetime
    credentials_changed_at: datetime | None = Field(
        None,
        description="Tokens issued before this are refused (password set, disable, revoke-all).",
    )


class UserList(BaseModel):
    items: list[UserInfo]
    total: int

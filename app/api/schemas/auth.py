"""Request and response bodies of the auth routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.security.scopes import Scope


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


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w .:@-]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))

    @field_validator("scopes")
    @classmethod
    def _unique_scopes(cls, value: list[Scope]) -> list[Scope]:
        return sorted(set(value))


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="First characters of the key, to recognise it.")
    scopes: list[str]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="The API key. Shown once: store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyInfo]
    total: int

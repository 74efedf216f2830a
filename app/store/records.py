"""Records the auth stores hold; plain pydantic models, no I/O."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.core.clock import utcnow


class UserRecord(BaseModel):
    username: str
    password_hash: str
    scopes: list[str]
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class ApiKeyRecord(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None

"""Session store interface: owner, agent, bounded history, sliding expiry, a run lock.

Backends (memory and Redis) live beside this file; both honour the same contract, tested
by the same tests.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from app.core.clock import utcnow
from app.llm.types import ChatMessage


class SessionRecord(BaseModel):
    id: str
    owner: str  # principal id
    agent: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    message_count: int = 0


class SessionStore(Protocol):
    async def create(self, *, owner: str, agent: str) -> SessionRecord: ...

    async def get(self, session_id: str) -> SessionRecord | None:
        """The session, or None when missing or expired. Reading refreshes the expiry."""
        ...

    async def list(
        self, *, owner: str, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        """The owner's sessions, newest first, and the owner's total."""
        ...

    async def delete(self, session_id: str) -> bool: ...

    async def messages(
        self, session_id: str, *, limit: int, offset: int
    ) -> builtins.list[ChatMessage]:
        """History oldest first (offset from the oldest kept message)."""
        ...

    async def append(self, session_id: str, messages: builtins.list[ChatMessage]) -> None:
        """Append and trim to SESSION_MAX_MESSAGES (oldest dropped); bump updated_at/expiry."""
        ...

    async def acquire_run_lock(self, session_id: str, *, run_id: str, ttl_seconds: int) -> bool:
        """Atomically take the session for one run; False when another run holds it."""
        ...

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        """Release only if ``run_id`` still holds it (a lock that expired is not stolen back)."""
        ...

"""Session store interface: owner, agent, bounded history, sliding expiry, a run lock and a
queue of runs waiting for that lock.

Backends (``session_memory`` and ``session_redis``, built by ``session_backends``) honour the
same contract, tested by the same tests.

The queue: a run that may wait for a busy session holds a *ticket*. Tickets are served in
order, those of interrupting runs (``ahead=True``) before those of enqueued ones, each group in
arrival order. A ticket lives only while its waiter keeps polling (every poll refreshes it), so
a waiter that dies stops blocking the queue once its ticket's short TTL runs out; a waiter
that gives up removes its ticket at once (``abandon_turn``).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Protocol
from uuid import uuid4

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


class SessionNotFoundError(LookupError):
    """Raised by ``append`` when the session is missing, expired or was deleted."""


def new_session_id() -> str:
    return uuid4().hex


class SessionStore(Protocol):
    async def create(self, *, owner: str, agent: str) -> SessionRecord: ...

    async def create_held(
        self, *, owner: str, agent: str, run_id: str, ttl_seconds: int
    ) -> SessionRecord:
        """A new session whose run lock ``run_id`` already holds (one atomic step)."""
        ...

    async def create_with_id(
        self, *, session_id: str, owner: str, agent: str
    ) -> SessionRecord | None:
        """A new session under an id the client chose (an AG-UI thread id), in one atomic
        step; None when a live session already has this id, whoever owns it."""
        ...

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
        """Atomically take the session for one run; False when another run holds it or a
        live ticket is waiting for it (a run that does not wait never jumps the queue)."""
        ...

    async def release_run_lock(self, session_id: str, *, run_id: str) -> None:
        """Release only if ``run_id`` still holds it (a lock that expired is not stolen back)."""
        ...

    async def run_lock_holder(self, session_id: str) -> str | None:
        """The run id holding the session, if any."""
        ...

    async def take_turn(
        self,
        session_id: str,
        *,
        run_id: str,
        ttl_seconds: int,
        ahead: bool,
        ticket_seconds: float,
    ) -> bool:
        """One poll of a waiting run, atomic: join the queue (first call: an ``ahead`` ticket
        goes after earlier ``ahead`` ones but before every other) or refresh this ticket for
        ``ticket_seconds``; drop dead tickets at the head; then, when the lock is free and this
        ticket is the first live one, remove it and take the lock. True when taken."""
        ...

    async def abandon_turn(self, session_id: str, *, run_id: str) -> None:
        """Remove ``run_id``'s ticket and release the lock if ``run_id`` holds it (a poll that
        took the lock may have been cancelled before its answer arrived)."""
        ...

    async def waiting(self, session_id: str) -> builtins.list[str]:
        """Run ids with a live ticket, first served first (diagnostics and tests)."""
        ...

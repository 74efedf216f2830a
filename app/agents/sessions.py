"""SessionService: the one home of "a session belongs to one principal and one agent", and of
what a run does when its session is busy.

Routes, foreground runs and background tasks all ask here. Another principal's session is
answered exactly like a missing one (``session_not_found``), and so is a malformed id, so ids
cannot be probed.

A session runs one run at a time. A run that finds it busy follows its ``IfBusy`` policy:
``reject`` fails at once (409 ``session_busy``); ``enqueue`` waits its turn, first come first
served across replicas; ``interrupt`` and ``rollback`` ask the current run to stop (through
the caller's ``interrupt`` callback, reason ``interrupted`` or ``rolled_back``) and wait ahead
of every enqueued run. Waits are bounded by ``wait_seconds``. A waiter polls the store with a
short backoff (so a release on another replica is seen within ``_MAX_POLL``) and a release in
this process wakes it at once.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Literal

from app.agents.registry import AgentRegistry
from app.core.errors import AppError, Conflict, NotFound
from app.llm.types import ChatMessage
from app.security.principals import Principal
from app.store.agent_state import AgentStateStore, MemoryAgentStateStore
from app.store.sessions import SessionRecord, SessionStore

# Our ids are 32 hex digits; a client may choose its own (an AG-UI thread id, usually a UUID):
# letters, digits, '-' and '_', at most 64, so every id is a safe Redis key part.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # in request schemas and query parameters
SESSION_ID = re.compile(SESSION_ID_PATTERN[1:-1])

IfBusy = Literal["reject", "enqueue", "interrupt", "rollback"]
# interrupt(holder_run_id, reason): stop the run holding the session, wherever it runs.
Interrupt = Callable[[str, str], Awaitable[None]]

_REASONS: dict[IfBusy, str] = {"interrupt": "interrupted", "rollback": "rolled_back"}
_FIRST_POLL = 0.02  # seconds; doubles up to _MAX_POLL while the session stays busy
_MAX_POLL = 0.2
# How long a waiter that stopped polling (its process died) blocks the queue. Waiters poll
# every _MAX_POLL at most, so this leaves room for a slow Redis round trip or a slow callback.
TICKET_SECONDS = 5.0


def session_not_found() -> NotFound:
    return NotFound("No session with this id.", code="session_not_found")


def session_busy(detail: str = "Another run is using this session.") -> Conflict:
    return Conflict(detail, code="session_busy")


class _Wakeups:
    """One event per session that local waiters sleep on; a local release sets it."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._waiters: Counter[str] = Counter()

    def enter(self, session_id: str) -> None:
        self._waiters[session_id] += 1

    def leave(self, session_id: str) -> None:
        self._waiters[session_id] -= 1
        if self._waiters[session_id] <= 0:
            del self._waiters[session_id]
            self._events.pop(session_id, None)

    def current(self, session_id: str) -> asyncio.Event:
        # Taken BEFORE a poll: a release between the poll and the sleep sets this very event.
        return self._events.setdefault(session_id, asyncio.Event())

    def wake(self, session_id: str) -> None:
        event = self._events.pop(session_id, None)
        if event is not None:
            event.set()


class SessionService:
    def __init__(
        self,
        *,
        store: SessionStore,
        agents: AgentRegistry,
        state: AgentStateStore | None = None,
        ticket_seconds: float = TICKET_SECONDS,
    ) -> None:
        self.store = store
        # Framework state kept with each session (adapters: checkpoints, contexts).
        self.state: AgentStateStore = state or MemoryAgentStateStore(ttl_seconds=86_400)
        self._agents = agents
        self._ticket_seconds = ticket_seconds
        self._wakeups = _Wakeups()

    async def create(self, *, owner: Principal, agent: str) -> SessionRecord:
        self._agents.require(agent)
        return await self.store.create(owner=owner.id, agent=agent)

    async def list(
        self, *, owner: Principal, limit: int, offset: int
    ) -> tuple[builtins.list[SessionRecord], int]:
        return await self.store.list(owner=owner.id, limit=limit, offset=offset)

    async def get_owned(self, *, owner: Principal, session_id: str) -> SessionRecord:
        """The caller's session (refreshing its expiry), else ``session_not_found``."""
        if not SESSION_ID.fullmatch(session_id):
            raise session_not_found()
        record = await self.store.get(session_id)
        if record is None or record.owner != owner.id:
            raise session_not_found()
        return record

    async def open_with_id(self, *, owner: Principal, session_id: str, agent: str) -> SessionRecord:
        """The caller's session under a client-chosen id, created for the caller (and this
        agent) when no session has the id yet. Another principal's id, or a malformed one,
        is ``session_not_found``; another agent's is ``session_agent_mismatch``."""
        if not SESSION_ID.fullmatch(session_id):
            raise session_not_found()
        self._agents.require(agent)
        record = await self.store.create_with_id(session_id=session_id, owner=owner.id, agent=agent)
        if record is None:  # taken: ours, or someone else's (then it is not found)
            record = await self.get_owned(owner=owner, session_id=session_id)
        if record.agent != agent:
            raise Conflict(
                f"This session belongs to agent {record.agent!r}.", code="session_agent_mismatch"
            )
        return record

    async def messages(
        self, *, owner: Principal, session_id: str, limit: int, offset: int
    ) -> tuple[SessionRecord, builtins.list[ChatMessage]]:
        record = await self.get_owned(owner=owner, session_id=session_id)
        return record, await self.store.messages(session_id, limit=limit, offset=offset)

    async def delete(self, *, owner: Principal, session_id: str) -> None:
        await self.get_owned(owner=owner, session_id=session_id)
        if not await self.store.delete(session_id):
            raise session_not_found()  # expired or deleted by a concurrent request
        await self.state.drop(session_id)

    # -- runs ----------------------------------------------------------------------------------

    async def start_for_run(
        self, *, owner: Principal, agent: str, run_id: str, lock_seconds: int
    ) -> SessionRecord:
        """A new session of the caller's for ``agent``, already held by ``run_id``."""
        self._agents.require(agent)
        return await self.store.create_held(
            owner=owner.id, agent=agent, run_id=run_id, ttl_seconds=lock_seconds
        )

    async def claim_for_run(
        self,
        *,
        owner: Principal,
        session_id: str,
        agent: str,
        run_id: str,
        lock_seconds: int,
        history_limit: int,
        if_busy: IfBusy = "reject",
        wait_seconds: float = 0.0,
        interrupt: Interrupt | None = None,
    ) -> builtins.list[ChatMessage]:
        """Take the session for one run and return its history; the caller must release it.

        A busy session is handled per ``if_busy`` (see the module docstring); a wait longer
        than ``wait_seconds`` ends in ``session_busy``. ``interrupt`` is called at most once,
        with the holder's run id; an AppError from it (the run just ended) is ignored."""
        session = await self.get_owned(owner=owner, session_id=session_id)
        if session.agent != agent:
            raise Conflict(
                f"This session belongs to agent {session.agent!r}.", code="session_agent_mismatch"
            )
        if if_busy == "reject":
            if not await self.store.acquire_run_lock(
                session_id, run_id=run_id, ttl_seconds=lock_seconds
            ):
                raise session_busy()
        try:
            if if_busy != "reject":
                await self._wait_turn(
                    session_id=session_id,
                    run_id=run_id,
                    lock_seconds=lock_seconds,
                    if_busy=if_busy,
                    wait_seconds=wait_seconds,
                    interrupt=interrupt,
                )
                # Deleted (or expired) while we waited: the run must not write to it.
                await self.get_owned(owner=owner, session_id=session_id)
            return await self.store.messages(session_id, limit=history_limit, offset=0)
        except BaseException:
            # Shielded: a cancelled waiter must still leave the queue and free the lock.
            await asyncio.shield(self._abandon(session_id, run_id))
            raise

    async def release_run(self, *, session_id: str, run_id: str) -> None:
        try:
            await self.store.release_run_lock(session_id, run_id=run_id)
        finally:
            self._wakeups.wake(session_id)

    async def holder(self, *, session_id: str) -> str | None:
        """The run id holding the session, if any."""
        return await self.store.run_lock_holder(session_id)

    async def append_exchange(self, *, session_id: str, user: str, assistant: str) -> None:
        await self.store.append(
            session_id,
            [
                ChatMessage(role="user", content=user),
                ChatMessage(role="assistant", content=assistant),
            ],
        )

    # -- waiting for a busy session ------------------------------------------------------------

    async def _wait_turn(
        self,
        *,
        session_id: str,
        run_id: str,
        lock_seconds: int,
        if_busy: IfBusy,
        wait_seconds: float,
        interrupt: Interrupt | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_seconds)
        ahead = if_busy != "enqueue"
        reason = _REASONS.get(if_busy)  # until the holder has been asked to stop
        delay = _FIRST_POLL
        self._wakeups.enter(session_id)
        try:
            while True:
                wakeup = self._wakeups.current(session_id)
                if await self.store.take_turn(
                    session_id,
                    run_id=run_id,
                    ttl_seconds=lock_seconds,
                    ahead=ahead,
                    ticket_seconds=self._ticket_seconds,
                ):
                    return
                if reason is not None:
                    # Our ticket is in the queue now, so the holder's release cannot let an
                    # enqueued run slip in ahead of us.
                    await self._interrupt_holder(session_id, run_id, reason, interrupt)
                    reason = None
                    continue  # the holder may be gone already: poll again at once
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise session_busy(
                        "Another run is using this session; waited "
                        f"{wait_seconds:g} s for it to end, then gave up."
                    )
                try:
                    async with asyncio.timeout(min(delay, remaining)):
                        await wakeup.wait()
                except TimeoutError:
                    delay = min(delay * 2, _MAX_POLL)
        finally:
            self._wakeups.leave(session_id)

    async def _interrupt_holder(
        self, session_id: str, run_id: str, reason: str, interrupt: Interrupt | None
    ) -> None:
        holder = await self.store.run_lock_holder(session_id)
        if holder is None or holder == run_id or interrupt is None:
            return
        try:
            await interrupt(holder, reason)
        except AppError:
            pass  # run_not_found: it has just ended, and its release will let us in

    async def _abandon(self, session_id: str, run_id: str) -> None:
        try:
            await self.store.abandon_turn(session_id, run_id=run_id)
        finally:
            self._wakeups.wake(session_id)  # the next waiter may be first now

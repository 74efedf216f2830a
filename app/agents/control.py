"""A run's control state: pending human-input requests, pause, and the step budget.

Owned by the run, touched by transports (an answer from a WebSocket or POST /input) and by
the agent (through RunContext). Single event loop: no locks needed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from app.agents.errors import InvalidInput
from app.agents.events import InputKind

_TRUE = {"true", "yes", "y", "1", "ok", "confirm", "approve", "approved"}
_FALSE = {"false", "no", "n", "0", "deny", "reject", "rejected", "cancel"}


@dataclass
class PendingInput:
    request_id: str
    kind: InputKind
    choices: list[str] | None
    future: asyncio.Future[Any]


def coerce_answer(kind: InputKind, choices: list[str] | None, value: Any) -> Any:
    """confirm takes true/false, choice one of the offered choices, text a string."""
    if kind == "confirm":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise InvalidInput("a confirm answer must be true or false")
    if kind == "choice":
        if isinstance(value, str) and choices and value in choices:
            return value
        raise InvalidInput(f"the answer must be one of: {', '.join(choices or [])}")
    if isinstance(value, str) and value.strip():
        return value
    raise InvalidInput("a text answer must be a non-empty string")


class RunControl:
    def __init__(self) -> None:
        self._pending: dict[str, PendingInput] = {}
        # Made when first needed: most runs are never paused, and each asyncio.Event holds a
        # deque (about 700 bytes) for as long as the run lives.
        self._resumed: asyncio.Event | None = None  # exists while paused; set by resume()
        self._parked: asyncio.Event | None = None  # set while the agent waits at a checkpoint

    def expect(self, request_id: str, kind: InputKind, choices: list[str] | None) -> PendingInput:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = PendingInput(request_id, kind, choices, future)
        self._pending[request_id] = pending
        return pending

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    @property
    def pending(self) -> list[PendingInput]:
        return list(self._pending.values())

    def answer(self, request_id: str, value: Any) -> None:
        """Deliver an answer. KeyError: no such pending request; InvalidInput: bad value."""
        pending = self._pending[request_id]
        coerced = coerce_answer(pending.kind, pending.choices, value)
        del self._pending[request_id]
        if not pending.future.done():
            pending.future.set_result(coerced)

    def pause(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.Event()

    def resume(self) -> None:
        if self._resumed is not None:
            self._resumed.set()
            self._resumed = None

    @property
    def paused(self) -> bool:
        return self._resumed is not None

    @property
    def parked(self) -> bool:
        """The agent waits at a checkpoint: the pause has taken effect (tasks report it)."""
        return self._parked is not None and self._parked.is_set()

    async def wait_parked(self) -> None:
        await self._parked_flag().wait()

    async def wait_while_paused(self) -> None:
        resumed = self._resumed
        if resumed is None:
            return
        parked = self._parked_flag()
        parked.set()
        try:
            await resumed.wait()
        finally:
            parked.clear()

    def _parked_flag(self) -> asyncio.Event:
        if self._parked is None:
            self._parked = asyncio.Event()
        return self._parked

"""The OpenAI Agents SDK's Session protocol kept in a session's framework state (ctx.state).

The items are read once when the run starts and written back once when it completes, so a
run that fails or is cancelled leaves the session as it was, like the session's messages.
A session that has no items yet (its state expired, or it began before this agent was served
through the SDK) starts from the session's messages (``ctx.history``) instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from app.llm.types import ChatMessage
from app.store.agent_state import SessionState

if TYPE_CHECKING:
    from agents import TResponseInputItem
    from agents.memory import SessionSettings

STATE_NAME = "openai_agents"
# The oldest turns are dropped past this many items (a turn is never cut in half).
MAX_ITEMS = 400


class StateSession:
    """Implements ``agents.memory.Session`` over one session's ``ctx.state``."""

    session_settings: SessionSettings | None = None

    def __init__(self, state: SessionState, items: list[TResponseInputItem]) -> None:
        self.session_id = state.session_id
        self._state = state
        self._items = items

    @classmethod
    async def open(cls, state: SessionState, history: list[ChatMessage]) -> StateSession:
        raw = await state.load(STATE_NAME)
        if raw is not None:
            items = cast("list[TResponseInputItem]", json.loads(raw))
        else:
            items = history_items(history)
        return cls(state, items)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        if limit is None:
            return list(self._items)
        return list(self._items[-limit:]) if limit > 0 else []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        self._items.extend(items)

    async def pop_item(self) -> TResponseInputItem | None:
        return self._items.pop() if self._items else None

    async def clear_session(self) -> None:
        self._items.clear()

    async def commit(self) -> None:
        """Keep the items for the session's next run (called when a run completes)."""
        await self._state.save(STATE_NAME, json.dumps(trimmed(self._items)).encode())


def history_items(history: list[ChatMessage]) -> list[TResponseInputItem]:
    """The session's text turns as SDK input items."""
    return [
        cast("TResponseInputItem", {"role": message.role, "content": message.content})
        for message in history
        if message.role in ("user", "assistant") and message.content
    ]


def trimmed(items: list[TResponseInputItem]) -> list[TResponseInputItem]:
    """At most MAX_ITEMS, starting at a user message so no tool call loses its output."""
    if len(items) <= MAX_ITEMS:
        return items
    start = len(items) - MAX_ITEMS
    while start < len(items) and not _is_user_message(items[start]):
        start += 1
    return items[start:]


def _is_user_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") == "user" and "call_id" not in item

"""A run's events as MCP progress notifications (notifications/progress), for a client that
sent a progress token: one notification per batch of events that were ready together (a burst
of tokens is one message), ``progress`` being the last event's sequence number, which only
grows, as the spec requires.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcp import types
from mcp.server.session import ServerSession

from app.agents.events import (
    Event,
    InputRequired,
    LogEvent,
    MessageEvent,
    PlanEvent,
    RunStarted,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)

MAX_MESSAGE_CHARS = 4000  # one notification's text; a longer burst of tokens is cut here


def describe(event: Event) -> str | None:
    """A short human line for one event; None for those not worth a notification."""
    match event:
        case TokenEvent(text=text):
            return text
        case RunStarted(run_id=run_id, agent=agent):
            return f"[run {run_id} of {agent} started]"
        case StepEvent(number=number, success=success):
            return f"[step {number} {'done' if success else 'failed'}]"
        case PlanEvent(items=items):
            return "[plan: " + "; ".join(items) + "]"
        case ToolCallEvent(name=name):
            return f"[calling {name}]"
        case ToolResultEvent(success=success):
            return f"[tool {'returned' if success else 'failed'}]"
        case LogEvent(message=message):
            return f"[{message}]"
        case InputRequired(prompt=prompt):
            return f"[waiting for input: {prompt}]"
        case MessageEvent():
            return None  # the answer itself arrives as the result
    return None


class ProgressReporter:
    def __init__(
        self,
        session: ServerSession,
        token: types.ProgressToken | None,
        request_id: types.RequestId,
    ) -> None:
        self._session = session
        self._token = token
        self._request_id = request_id

    async def report(self, events: Sequence[Event]) -> None:
        if self._token is None or not events:
            return
        lines = [line for line in map(describe, events) if line]
        if not lines:
            return
        message = "".join(lines)[:MAX_MESSAGE_CHARS]
        await self._session.send_progress_notification(
            self._token,
            progress=float(events[-1].seq),
            message=message,
            related_request_id=str(self._request_id),
        )

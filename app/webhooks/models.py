"""What a webhook subscription and a delivery are, and which run changes make events.

Event types are ``<kind>.<what>``: a foreground run's end is ``run.completed`` (``failed``,
``cancelled``), its question ``run.input_required``; a background task's are ``task.*`` (a
task's end is ``task.completed``, never also ``run.completed``). Each event is one Standard
Webhooks message: its id (``msg_...``) is the ``webhook-id`` of every attempt.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, Field

from app.core.clock import utcnow
from app.store.run_records import RunKind, RunStatus

EventType = Literal[
    "run.completed",
    "run.failed",
    "run.cancelled",
    "run.incomplete",
    "run.input_required",
    "task.completed",
    "task.failed",
    "task.cancelled",
    "task.incomplete",
    "task.input_required",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
NOTIFIED_STATUSES: frozenset[RunStatus] = frozenset(
    {"completed", "failed", "cancelled", "incomplete", "input_required"}
)
DeliveryStatus = Literal["pending", "delivered", "failed"]
HISTORY_MAX = 20  # attempts kept on a delivery's record (the count goes on)


def event_type(kind: RunKind, status: RunStatus) -> EventType | None:
    """The event a run moving to ``status`` makes, if any."""
    if status not in NOTIFIED_STATUSES:
        return None
    name = f"{kind}.{status}"
    return name if name in EVENT_TYPES else None


def new_subscription_id() -> str:
    return "wh_" + secrets.token_hex(16)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


class Subscription(BaseModel):
    id: str
    owner: str  # the principal whose runs and tasks it hears of
    url: str
    events: list[EventType]
    description: str = ""
    secret: str  # whsec_..., shown once at creation
    created_at: datetime = Field(default_factory=utcnow)

    def wants(self, event: EventType) -> bool:
        return event in self.events


class DeliveryAttempt(BaseModel):
    at: datetime
    status: int | None = None  # the receiver's HTTP status, if it answered
    error: str | None = None  # http_<status>, refused_url, an exception name


class Delivery(BaseModel):
    id: str  # the message id: webhook-id on every attempt
    subscription_id: str
    event: EventType
    run_id: str
    body: str  # the JSON sent, fixed when the event happened: every attempt sends these bytes
    status: DeliveryStatus = "pending"
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    history: list[DeliveryAttempt] = Field(default_factory=list)

    def attempted(self, attempt: DeliveryAttempt) -> Delivery:
        history = [*self.history, attempt][-HISTORY_MAX:]
        return self.model_copy(
            update={
                "attempts": self.attempts + 1,
                "updated_at": attempt.at,
                "last_status": attempt.status,
                "last_error": attempt.error,
                "history": history,
            }
        )

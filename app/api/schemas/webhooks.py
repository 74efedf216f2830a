"""Bodies of the webhook routes (POST/GET/DELETE /v1/webhooks, deliveries, retry)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, EventType, Subscription
from app.webhooks.owners import is_tenant_owner

_EVENTS = (
    "The events to be told of: `run.completed`, `run.failed`, `run.cancelled`, "
    "`run.incomplete` (stopped at a token budget), `run.input_required` (foreground runs) "
    "and the same for `task.` (background tasks: a "
    "task's end is `task.completed`, never also `run.completed`)."
)


class WebhookCreate(BaseModel):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="Where to POST: http(s), a public address (or one in "
        "WEBHOOK_ALLOWED_NETWORKS), no credentials in it.",
        examples=["https://hooks.example.com/agent-service"],
    )
    events: list[EventType] = Field(min_length=1, max_length=10, description=_EVENTS)
    description: str = Field("", max_length=500, description="For you: what it is for.")
    scope: Literal["principal", "tenant"] = Field(
        "principal",
        description="`principal`: the caller's own runs and tasks. `tenant` (needs "
        "`tenant:admin`): those of every principal of the caller's tenant; managed by any of "
        "its tenant admins.",
    )

    @field_validator("url")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if value != value.strip() or any(c.isspace() for c in value):
            raise ValueError("the URL must not contain whitespace")
        return value


class WebhookInfo(BaseModel):
    id: str
    url: str
    events: list[EventType]
    description: str
    created_at: datetime
    scope: Literal["principal", "tenant"] = "principal"

    @classmethod
    def of(cls, subscription: Subscription) -> WebhookInfo:
        return cls(
            id=subscription.id,
            url=subscription.url,
            events=subscription.events,
            description=subscription.description,
            created_at=subscription.created_at,
            scope="tenant" if is_tenant_owner(subscription.owner) else "principal",
        )


class WebhookCreated(WebhookInfo):
    secret: str = Field(
        description="The signing secret (`whsec_...`), shown this once: verify each delivery's "
        "`webhook-signature` with it (Standard Webhooks; any of its libraries)."
    )


class WebhookList(BaseModel):
    items: list[WebhookInfo]


class DeliveryInfo(BaseModel):
    id: str = Field(description="The message id: the `webhook-id` header of every attempt.")
    event: EventType
    run_id: str
    status: DeliveryStatus = Field(
        description="`pending` (being tried), `delivered` (a 2xx came back) or `failed` "
        "(the dead letters: past the retry horizon, or refused for good; retry it with "
        "POST .../retry)."
    )
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None = Field(description="The receiver's last HTTP status, if any.")
    last_error: str | None = Field(
        description="Why the last attempt failed: `http_<status>`, `refused_url`, or the "
        "connection error's name."
    )
    attempts_log: list[DeliveryAttempt] = Field(description="The latest attempts (up to 20).")
    payload: dict[str, Any] = Field(description="The body sent: `type`, `timestamp`, `data`.")

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryInfo:

        return cls(
            id=delivery.id,
            event=delivery.event,
            run_id=delivery.run_id,
            status=delivery.status,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            attempts_log=delivery.history,
            payload=json.loads(delivery.body),
        )


class DeliveryList(BaseModel):
    items: list[DeliveryInfo]
    total: int
    limit: int
    offset: int

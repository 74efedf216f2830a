"""Settings of webhook subscriptions (POST /v1/webhooks): whether they exist, how deliveries
are retried and for how long, and which non-public networks they may reach. A group of its
own, mixed into Settings (app/core/config.py) like the run group."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, field_validator


class WebhookSettings(BaseModel):
    # --- Webhooks ----------------------------------------------------------------------------
    WEBHOOKS_ENABLED: bool = Field(
        True,
        description="Serve /v1/webhooks: signed (Standard Webhooks) notifications of run and "
        "task ends and input requests, delivered by the workers at least once.",
    )
    WEBHOOK_MAX_SUBSCRIPTIONS_PER_PRINCIPAL: int = Field(
        20, ge=1, le=1000, description="Webhook subscriptions one principal may hold."
    )
    WEBHOOK_RETRY_HORIZON_SECONDS: int = Field(
        259_200,
        ge=1,
        description="How long a delivery is retried (from the event) before it goes to the "
        "dead-letter list (default 72 h).",
    )
    WEBHOOK_BACKOFF_SECONDS: float = Field(
        5.0, gt=0, description="Wait before a delivery's second attempt; doubles each time."
    )
    WEBHOOK_MAX_BACKOFF_SECONDS: float = Field(
        3600.0, gt=0, description="Longest wait between two attempts (jitter on top: 50-100 %)."
    )
    WEBHOOK_TIMEOUT_SECONDS: float = Field(
        10.0, gt=0, le=60, description="Seconds one attempt may take, connect to last byte."
    )
    WEBHOOK_CONCURRENCY: int = Field(
        16, ge=1, le=1000, description="Deliveries in flight per worker process."
    )
    WEBHOOK_POLL_SECONDS: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often an idle worker looks for due deliveries (a new event is "
        "delivered within about this long).",
    )
    WEBHOOK_DELIVERY_RETENTION_SECONDS: int = Field(
        604_800,
        ge=60,
        description="How long a delivery's record stays readable (GET "
        "/v1/webhooks/{id}/deliveries) after its last change (default 7 days).",
    )
    WEBHOOK_ALLOWED_NETWORKS: str = Field(
        "",
        description="Comma-separated networks (CIDR) webhooks may reach although they are "
        "not public, e.g. 10.20.0.0/16 for a receiver inside the cluster. Empty: only public "
        "addresses; loopback, private and link-local ones are refused (SSRF).",
    )

    @field_validator("WEBHOOK_ALLOWED_NETWORKS")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if entry:
                ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    @property
    def webhook_allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(entry.strip(), strict=False)
            for entry in self.WEBHOOK_ALLOWED_NETWORKS.split(",")
            if entry.strip()
        )

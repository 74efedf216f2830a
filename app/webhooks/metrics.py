"""Prometheus metrics of webhooks (label values: event types and outcomes, bounded sets)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_EVENTS = Counter(
    "webhook_deliveries_queued_total",
    "Webhook deliveries queued, by event type (one per subscription that wants the event).",
    ["event"],
)
WEBHOOK_ATTEMPTS = Counter(
    "webhook_delivery_attempts_total",
    "Webhook delivery attempts, by outcome: delivered, retry (failed, will be retried), "
    "dead (failed for good: past the horizon or refused), dropped (subscription deleted).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "webhook_delivery_attempt_seconds",
    "Duration of one webhook delivery attempt, connect to status.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

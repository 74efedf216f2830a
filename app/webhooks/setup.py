"""Builds the webhook parts of one process from Settings: the service the routes use, the
outbox the run store tells of status changes, and (where tasks run) the dispatcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from redis.asyncio import Redis

from app.core.config import Settings
from app.store.run_store import RunStore
from app.tasks.webhook_delivery import WebhookDelivery, WebhookPolicy
from app.webhooks.deliveries import DeliveryStore, MemoryDeliveryStore
from app.webhooks.deliveries_redis import RedisDeliveryStore
from app.webhooks.dispatcher import WebhookDispatcher
from app.webhooks.outbox import WebhookOutbox
from app.webhooks.service import WebhookService, forget_owner
from app.webhooks.subscriptions import (
    MemorySubscriptionStore,
    RedisSubscriptionStore,
    SubscriptionStore,
)


@dataclass(slots=True)
class Webhooks:
    service: WebhookService
    dispatcher: WebhookDispatcher | None  # only where tasks run (a worker)


def _stores(settings: Settings, redis: Redis | None) -> tuple[SubscriptionStore, DeliveryStore]:
    retention = settings.WEBHOOK_DELIVERY_RETENTION_SECONDS
    if redis is None:
        return MemorySubscriptionStore(), MemoryDeliveryStore(retention_seconds=retention)
    prefix = settings.REDIS_KEY_PREFIX
    return (
        RedisSubscriptionStore(redis, prefix=prefix),
        RedisDeliveryStore(redis, prefix=prefix, retention_seconds=retention),
    )


def build_forget(settings: Settings, redis: Redis) -> Callable[[str], Awaitable[None]]:
    """For the CLI: drop an owner's subscriptions (a user or tenant deleted there)."""
    subscriptions, deliveries = _stores(settings, redis)
    return partial(forget_owner, subscriptions, deliveries)


def build_webhooks(
    settings: Settings, redis: Redis | None, runs: RunStore, *, dispatch: bool
) -> Webhooks:
    """Also makes ``runs`` tell the outbox of every status change."""
    subscriptions, deliveries = _stores(settings, redis)
    outbox = WebhookOutbox(runs=runs, subscriptions=subscriptions, deliveries=deliveries)
    runs.observer = outbox.on_status
    networks = settings.webhook_allowed_networks
    dispatcher = None
    if dispatch:
        policy = WebhookPolicy(
            attempts=1,  # one per claim: the retries are the dispatcher's, in the store
            timeout_seconds=settings.WEBHOOK_TIMEOUT_SECONDS,
            backoff_seconds=settings.WEBHOOK_BACKOFF_SECONDS,
            max_backoff_seconds=settings.WEBHOOK_MAX_BACKOFF_SECONDS,
            allowed_networks=networks,
        )
        dispatcher = WebhookDispatcher(
            subscriptions=subscriptions,
            deliveries=deliveries,
            http=WebhookDelivery(policy=policy),
            concurrency=settings.WEBHOOK_CONCURRENCY,
            poll_seconds=settings.WEBHOOK_POLL_SECONDS,
            horizon_seconds=settings.WEBHOOK_RETRY_HORIZON_SECONDS,
        )
    service = WebhookService(
        subscriptions=subscriptions,
        deliveries=deliveries,
        outbox=outbox,
        max_per_principal=settings.WEBHOOK_MAX_SUBSCRIPTIONS_PER_PRINCIPAL,
        allowed_networks=networks,
    )
    return Webhooks(service=service, dispatcher=dispatcher)

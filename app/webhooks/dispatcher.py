"""Delivers due webhooks: one loop per worker process (``agent-service worker``, or the API
process with WORKER_ENABLED), as many deliveries in flight as WEBHOOK_CONCURRENCY.

Each round claims what is due under a lease (``DeliveryStore.claim``), then per delivery: the
subscription (gone: the delivery is dropped), a Standard Webhooks signature over the same
message id and body on every attempt with this attempt's timestamp, one POST (the URL checked
and pinned to the address checked: app/tasks/webhook_delivery.py), and the outcome written
back: delivered; due again after an exponential backoff with jitter while the retry horizon
lasts; or failed, the dead letter (horizon passed, or an answer that retrying cannot change:
a 4xx other than 408/425/429, a refused URL). A worker stopped or killed mid-delivery leaves
the lease to run out: another worker, or this one restarted, delivers it again (at least
once; the receiver deduplicates by ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import structlog

from app.core.clock import utcnow
from app.core.lifecycle import raise_if_cancelling
from app.tasks.webhook_delivery import Webhook, WebhookDelivery
from app.webhooks.deliveries import DeliveryStore
from app.webhooks.metrics import WEBHOOK_ATTEMPT_SECONDS, WEBHOOK_ATTEMPTS
from app.webhooks.models import Delivery, DeliveryAttempt
from app.webhooks.signing import signed_headers
from app.webhooks.subscriptions import SubscriptionStore

log = structlog.get_logger(__name__)

LEASE_MARGIN_SECONDS = 5.0  # past the attempt's own bound: time to write its outcome


class WebhookDispatcher:
    def __init__(
        self,
        *,
        subscriptions: SubscriptionStore,
        deliveries: DeliveryStore,
        http: WebhookDelivery,
        concurrency: int,
        poll_seconds: float,
        horizon_seconds: float,
    ) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._http = http
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._horizon = timedelta(seconds=horizon_seconds)
        self._lease = http.policy.timeout_seconds + LEASE_MARGIN_SECONDS
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    async def serve(self) -> None:
        """Until cancelled: claim what is due, deliver it, wait for more."""
        while True:
            free = self._concurrency - len(self._in_flight)
            claimed: list[tuple[str, str]] = []
            if free > 0:
                try:
                    claimed = await self._deliveries.claim(free, lease_seconds=self._lease)
                except Exception as exc:  # Redis away: try again next round
                    raise_if_cancelling()
                    log.warning("webhook_claim_failed", error=type(exc).__name__)
            for subscription_id, message_id in claimed:
                task = asyncio.create_task(self._deliver(subscription_id, message_id))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                continue  # more may be due: no wait while slots are full of work
            self._slot_freed.clear()
            wait = self._slot_freed.wait() if free <= 0 else asyncio.sleep(self._poll)
            await wait

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def aclose(self) -> None:
        """Stop what is in flight: their leases run out and they are delivered again."""
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._http.aclose()

    async def _deliver(self, subscription_id: str, message_id: str) -> None:
        try:
            await self._deliver_once(subscription_id, message_id)
        except Exception as exc:  # a store error: the lease runs out, it is tried again
            raise_if_cancelling()
            log.warning("webhook_delivery_error", message_id=message_id, error=type(exc).__name__)

    async def _deliver_once(self, subscription_id: str, message_id: str) -> None:
        delivery = await self._deliveries.get(subscription_id, message_id)
        subscription = await self._subscriptions.get(subscription_id)
        if delivery is None or subscription is None or delivery.status != "pending":
            await self._deliveries.drop(subscription_id, message_id)
            WEBHOOK_ATTEMPTS.labels(outcome="dropped").inc()
            return
        at = utcnow()
        headers = signed_headers(
            secret=subscription.secret, message_id=delivery.id, at=at, body=delivery.body
        )
        hook = Webhook(
            url=subscription.url,
            body=delivery.body.encode(),
            headers=headers,
            label=f"{delivery.event} {delivery.id}",
        )
        started = time.monotonic()
        result, retry_after = await self._http.attempt(hook, delivery.attempts + 1)
        WEBHOOK_ATTEMPT_SECONDS.observe(time.monotonic() - started)
        tried = delivery.attempted(DeliveryAttempt(at=at, status=result.status, error=result.error))
        if result.delivered:
            await self._end(tried.model_copy(update={"status": "delivered", "delivered_at": at}))
            return
        delay = None if retry_after is None else self._http.backoff(tried.attempts, retry_after)
        due = None if delay is None else utcnow() + timedelta(seconds=delay)
        if due is None or due - delivery.created_at > self._horizon:
            await self._end(tried.model_copy(update={"status": "failed", "next_attempt_at": None}))
            return
        await self._deliveries.save(tried.model_copy(update={"next_attempt_at": due}), due_in=delay)
        WEBHOOK_ATTEMPTS.labels(outcome="retry").inc()

    async def _end(self, delivery: Delivery) -> None:
        await self._deliveries.save(delivery, due_in=None)
        outcome = "delivered" if delivery.status == "delivered" else "dead"
        WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
        event = "webhook_delivered" if outcome == "delivered" else "webhook_dead_lettered"
        log.info(
            event,
            message_id=delivery.id,
            subscription_id=delivery.subscription_id,
            webhook_event=delivery.event,
            attempts=delivery.attempts,
            status=delivery.last_status,
            error=delivery.last_error,
        )

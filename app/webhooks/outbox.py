"""Turns a run's status change into webhook deliveries: the run store tells the outbox of every
status a run moved to (``RunStore.observer``), and for an end or a question it queues one
delivery per subscription that wants the event: the run's owner's, and its tenant's
(app/webhooks/owners.py).

Queued right after the status is stored, by the process that stored it (the API process for a
foreground run, the worker for a task), before the run's readers see the end: so a client
told by the run's terminal event can already find the delivery in the log. A process that
dies between the two loses that one event's deliveries (once queued, they survive anything).
Cost while nobody subscribed: none per run (whether any subscription exists is re-read at
most every ``recheck_seconds``, and at once in the process that made one).
"""

from __future__ import annotations

import json
import time

import structlog

from app.core.clock import utcnow
from app.store.run_records import RunStatus
from app.store.run_store import RunStore
from app.store.run_view import RunInfo
from app.webhooks.deliveries import DeliveryStore
from app.webhooks.metrics import WEBHOOK_EVENTS
from app.webhooks.models import NOTIFIED_STATUSES, Delivery, event_type, new_message_id
from app.webhooks.owners import owners_hearing
from app.webhooks.subscriptions import SubscriptionStore

log = structlog.get_logger(__name__)


class WebhookOutbox:
    def __init__(
        self,
        *,
        runs: RunStore,
        subscriptions: SubscriptionStore,
        deliveries: DeliveryStore,
        recheck_seconds: float = 2.0,
    ) -> None:
        self._runs = runs
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._recheck = recheck_seconds
        self._any: bool | None = None
        self._checked_at = 0.0

    def subscribed(self) -> None:
        """A subscription was made in this process: hear of events from now on."""
        self._any, self._checked_at = True, time.monotonic()

    async def on_status(self, run_id: str, status: RunStatus) -> None:
        if status not in NOTIFIED_STATUSES or not await self._anyone_listens():
            return
        record = await self._runs.get(run_id)
        if record is None:
            return
        event = event_type(record.kind, status)
        if event is None:
            return
        wanted = [
            subscription
            for owner in owners_hearing(record.owner)  # the owner's own, and its tenant's
            for subscription in await self._subscriptions.list(owner)
            if subscription.wants(event)
        ]
        if not wanted:
            return
        body = json.dumps(
            {
                "type": event,
                "timestamp": utcnow().isoformat(),
                "data": RunInfo.of(record).model_dump(mode="json"),
            },
            separators=(",", ":"),
        )
        deliveries = [
            Delivery(
                id=new_message_id(), subscription_id=s.id, event=event, run_id=run_id, body=body
            )
            for s in wanted
        ]
        await self._deliveries.add(deliveries)
        WEBHOOK_EVENTS.labels(event=event).inc(len(deliveries))
        log.info("webhook_queued", run_id=run_id, webhook_event=event, deliveries=len(deliveries))

    async def _anyone_listens(self) -> bool:
        now = time.monotonic()
        if self._any is None or now - self._checked_at >= self._recheck:
            self._any, self._checked_at = await self._subscriptions.any(), now
        return self._any

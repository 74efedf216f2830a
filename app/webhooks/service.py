"""What the webhook routes do: subscriptions an owner manages, and their delivery logs.

A subscription belongs to the principal that made it and hears only of that principal's runs
and tasks, or to its tenant (``tenant:<id>``, app/webhooks/owners.py) and hears of every
principal's of that tenant. The routes pass the owners the caller may act as; another's
subscription, or a malformed id, is a 404 like a missing one (``admin`` included: a
subscription is as private as the runs it reports). Its URL is checked
when it is made, as it is before every delivery (app/tasks/webhook_delivery.py).
"""

from __future__ import annotations

import builtins
import re

from app.core.errors import Conflict, NotFound, Unprocessable
from app.tasks.webhook_delivery import Network, UnsafeWebhookUrl, check_webhook_url
from app.webhooks.deliveries import DeliveryStore
from app.webhooks.models import (
    Delivery,
    DeliveryStatus,
    EventType,
    Subscription,
    new_subscription_id,
)
from app.webhooks.outbox import WebhookOutbox
from app.webhooks.signing import new_secret
from app.webhooks.subscriptions import SubscriptionStore

# The owners a caller may act as: its own id, and its tenant's when it is a tenant admin.
Owners = tuple[str, ...]
SUBSCRIPTION_ID = re.compile(r"wh_[0-9a-f]{32}")
MESSAGE_ID = re.compile(r"msg_[0-9a-f]{32}")


async def drop(
    subscriptions: SubscriptionStore, deliveries: DeliveryStore, subscription: Subscription
) -> None:
    """A subscription and its delivery log, gone (queued deliveries are dropped with it)."""
    await subscriptions.delete(subscription)
    await deliveries.forget(subscription.id)


async def forget_owner(
    subscriptions: SubscriptionStore, deliveries: DeliveryStore, owner: str
) -> None:
    """Every subscription of an owner gone for good (a deleted user or tenant)."""
    for subscription in await subscriptions.list(owner):
        await drop(subscriptions, deliveries, subscription)


def _not_found() -> NotFound:
    return NotFound("No webhook subscription with this id.", code="webhook_not_found")


class WebhookService:
    def __init__(
        self,
        *,
        subscriptions: SubscriptionStore,
        deliveries: DeliveryStore,
        outbox: WebhookOutbox,
        max_per_principal: int,
        allowed_networks: tuple[Network, ...],
    ) -> None:
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self._outbox = outbox
        self._max = max_per_principal
        self._allowed = allowed_networks

    async def create(
        self, owner: str, *, url: str, events: builtins.list[EventType], description: str
    ) -> Subscription:
        try:
            await check_webhook_url(url, allow_private=False, allowed_networks=self._allowed)
        except UnsafeWebhookUrl as exc:
            raise Unprocessable(
                f"The webhook URL cannot be used: {exc}.",
                code="webhook_url_refused",
                extensions={"errors": [{"field": "body.url", "message": str(exc)}]},
            ) from None
        if await self.subscriptions.count(owner) >= self._max:
            raise Conflict(
                f"At most {self._max} webhook subscriptions per principal (and per tenant); "
                "delete one first.",
                code="too_many_webhooks",
            )
        subscription = Subscription(
            id=new_subscription_id(),
            owner=owner,
            url=url,
            events=sorted(set(events)),
            description=description,
            secret=new_secret(),
        )
        await self.subscriptions.create(subscription)
        self._outbox.subscribed()
        return subscription

    async def list(self, owners: Owners) -> list[Subscription]:
        return [s for owner in owners for s in await self.subscriptions.list(owner)]

    async def get(self, owners: Owners, subscription_id: str) -> Subscription:
        if SUBSCRIPTION_ID.fullmatch(subscription_id) is None:
            raise _not_found()
        subscription = await self.subscriptions.get(subscription_id)
        if subscription is None or subscription.owner not in owners:
            raise _not_found()
        return subscription

    async def delete(self, owner: Owners, subscription_id: str) -> None:
        subscription = await self.get(owner, subscription_id)
        await drop(self.subscriptions, self.deliveries, subscription)

    async def forget_owner(self, owner: str) -> None:
        """A principal (or tenant) that is gone for good: its subscriptions and their logs go
        too, so a later principal of the same id (a user made again with the name) hears
        nothing of it and its runs are never sent to the old owner's URLs."""
        await forget_owner(self.subscriptions, self.deliveries, owner)

    async def deliveries_of(
        self,
        owner: Owners,
        subscription_id: str,
        *,
        status: DeliveryStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[builtins.list[Delivery], int]:
        subscription = await self.get(owner, subscription_id)
        return await self.deliveries.list(
            subscription.id, status=status, limit=limit, offset=offset
        )

    async def retry(self, owner: Owners, subscription_id: str, message_id: str) -> Delivery:
        """Queue a delivery again, now, with its message id and body (a dead letter, or one
        already delivered that the receiver asks for again)."""
        subscription = await self.get(owner, subscription_id)
        delivery = None
        if MESSAGE_ID.fullmatch(message_id) is not None:
            delivery = await self.deliveries.get(subscription.id, message_id)
        if delivery is None:
            raise NotFound("No delivery with this id.", code="webhook_delivery_not_found")
        if delivery.status == "pending":
            raise Conflict(
                "This delivery is still being tried; it can be retried once it has ended.",
                code="webhook_delivery_pending",
            )
        again = delivery.model_copy(update={"status": "pending", "next_attempt_at": None})
        await self.deliveries.save(again, due_in=0.0)
        return again

"""Delivery records, each subscription's delivery log, and the due queue (interface + memory).

A delivery is one event for one subscription. It is queued when the event happens, taken by a
worker under a lease (``claim``: it comes due again after ``lease_seconds`` unless the worker
reschedules or finishes it, so a worker killed mid-delivery loses nothing), and ends
``delivered`` or ``failed`` (the dead letters: past the retry horizon, or refused for good;
``retry`` queues one again). A subscription's log keeps its newest LOG_MAX deliveries.
The Redis implementation is app/webhooks/deliveries_redis.py.
"""

from __future__ import annotations

import builtins
import time
from typing import Protocol

from app.webhooks.models import Delivery, DeliveryStatus

LOG_MAX = 1_000


class DeliveryStore(Protocol):
    async def add(self, deliveries: builtins.list[Delivery]) -> None:
        """Store new deliveries, log them and make them due now."""
        ...

    async def claim(self, limit: int, *, lease_seconds: float) -> builtins.list[tuple[str, str]]:
        """Up to ``limit`` due deliveries, as (subscription id, message id), each leased."""
        ...

    async def get(self, subscription_id: str, message_id: str) -> Delivery | None: ...

    async def save(self, delivery: Delivery, *, due_in: float | None) -> None:
        """Write the record; ``due_in``: seconds until its next attempt, None when it is over
        (delivered or failed: it leaves the queue)."""
        ...

    async def drop(self, subscription_id: str, message_id: str) -> None:
        """Take it off the queue (its record or subscription is gone)."""
        ...

    async def list(
        self, subscription_id: str, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[Delivery], int]:
        """The subscription's deliveries, newest first, and how many match."""
        ...

    async def forget(self, subscription_id: str) -> None:
        """A deleted subscription's log (its records expire by themselves)."""
        ...


class MemoryDeliveryStore:
    """One process (development): the same contract, on the wall clock."""

    def __init__(self, *, retention_seconds: float) -> None:
        self._records: dict[tuple[str, str], Delivery] = {}
        self._logs: dict[str, builtins.list[str]] = {}  # oldest first
        self._due: dict[tuple[str, str], float] = {}
        self._retention = retention_seconds

    async def add(self, deliveries: builtins.list[Delivery]) -> None:
        now = time.time()
        for delivery in deliveries:
            key = (delivery.subscription_id, delivery.id)
            self._records[key] = delivery
            log = self._logs.setdefault(delivery.subscription_id, [])
            log.append(delivery.id)
            for gone in log[:-LOG_MAX]:
                self._records.pop((delivery.subscription_id, gone), None)
            del log[:-LOG_MAX]
            self._due[key] = now

    async def claim(self, limit: int, *, lease_seconds: float) -> builtins.list[tuple[str, str]]:
        now = time.time()
        due = sorted((at, key) for key, at in self._due.items() if at <= now)[:limit]
        for _, key in due:
            self._due[key] = now + lease_seconds
        return [key for _, key in due]

    async def get(self, subscription_id: str, message_id: str) -> Delivery | None:
        return self._records.get((subscription_id, message_id))

    async def save(self, delivery: Delivery, *, due_in: float | None) -> None:
        key = (delivery.subscription_id, delivery.id)
        self._records[key] = delivery
        if due_in is None:
            self._due.pop(key, None)
        else:
            self._due[key] = time.time() + due_in

    async def drop(self, subscription_id: str, message_id: str) -> None:
        self._due.pop((subscription_id, message_id), None)

    async def list(
        self, subscription_id: str, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[builtins.list[Delivery], int]:
        ids = reversed(self._logs.get(subscription_id, []))
        found = [self._records.get((subscription_id, i)) for i in ids]
        matching = [d for d in found if d is not None and (status is None or d.status == status)]
        return matching[offset : offset + limit], len(matching)

    async def forget(self, subscription_id: str) -> None:
        for message_id in self._logs.pop(subscription_id, []):
            self._records.pop((subscription_id, message_id), None)
            self._due.pop((subscription_id, message_id), None)

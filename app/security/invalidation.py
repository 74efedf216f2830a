"""Tell every process that a principal changed, so its cached view is dropped at once.

A user disabled, deleted, signed out or given a new password (and an API key revoked) is
announced as its principal id on one Redis pub/sub channel. The process making the change
drops its own entry synchronously, before answering; every other process drops it when the
message arrives, well within the USER_CHECK_TTL_SECONDS that bounds a lost message. Each
(re)subscription clears the whole cache, since messages sent while disconnected are gone.

The CLI publishes without listening (it caches nothing); without Redis there is one process
and only the local drop happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.lifecycle import stop_task
from app.security.revocation import UserCheck
from app.store.redis_client import listen_forever, subscribable

log = structlog.get_logger(__name__)

SUBSCRIBE_WAIT_SECONDS = 1.0


class Invalidated(Protocol):
    """A per-process cache told of every message (a tenant's change: ``tenant:<id>``)."""

    def invalidate(self, message: str) -> None: ...

    def clear(self) -> None: ...


class InvalidationBus:
    def __init__(
        self,
        redis: Redis | None,
        *,
        prefix: str,
        check: UserCheck | None,
        also: Sequence[Invalidated] = (),
    ) -> None:
        self._redis = redis
        self._channel = f"{prefix}auth:principal-changed"
        self._check = check
        self._also = tuple(also)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def publish(self, principal_id: str) -> None:
        """Drop ``principal_id`` here now and tell the other processes. A failed publish is
        logged, not raised: the change is stored, and the TTL bounds what others miss."""
        self._drop(principal_id)
        if self._redis is None:
            return
        try:
            await self._redis.publish(self._channel, principal_id)
        except (RedisError, OSError) as exc:
            log.warning("principal_change_not_published", error=type(exc).__name__)

    async def start(self) -> None:
        """Listen in the background; waits briefly for the subscription, so a process that
        serves has (almost always) already subscribed. Never fails start-up."""
        if self._redis is None or self._check is None:
            return
        self._task = asyncio.create_task(self._listen_forever(), name="principal-changes")
        try:
            await asyncio.wait_for(self.listening.wait(), SUBSCRIBE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("principal_changes_not_subscribed_yet")

    def _drop(self, message: str) -> None:
        if self._check is not None:
            self._check.invalidate(message)
        for cache in self._also:
            cache.invalidate(message)

    async def aclose(self) -> None:
        await stop_task(self._task)

    async def _listen_forever(self) -> None:
        await listen_forever(
            self._listen, on_disconnect=self.listening.clear, event="principal_changes_disconnected"
        )

    async def _listen(self) -> None:
        assert self._redis is not None and self._check is not None  # noqa: S101 - see start()
        await subscribable(self._redis)  # a cluster client's slot map, before SUBSCRIBE
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            # Redis confirms the subscription: from here on no publish can be missed.
            confirmed = await pubsub.get_message(timeout=SUBSCRIBE_WAIT_SECONDS)
            if confirmed is None or confirmed.get("type") != "subscribe":
                raise ConnectionError("the subscription was not confirmed")
            self._check.clear()  # whatever was published while we were not listening
            for cache in self._also:
                cache.clear()
            self.listening.set()
            while True:
                # A bounded wait: the pool's short socket timeout must not read as an error.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._drop(str(message["data"]))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

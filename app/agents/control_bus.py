"""Reach a live run held by another process: request/reply over Redis pub/sub.

Every process listens on one control channel. A request names the run and carries a private
reply channel; only the process holding the run answers (ownership is checked there), so
the caller gets a real 202/404/422 and not a guess. No answer in time means no process holds
the run (404).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.lifecycle import raise_if_cancelling

log = structlog.get_logger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
REPLY_TIMEOUT_SECONDS = 2.0


class RunControlBus:
    def __init__(self, redis: Redis, *, prefix: str, handler: Handler) -> None:
        self._redis = redis
        self._prefix = prefix
        self._channel = f"{prefix}runs:control"
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="run-control-bus")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                self.listening.clear()
                log.warning("run_control_bus_disconnected", error=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.1

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            self.listening.set()
            while True:
                # A bounded wait: the pool's short socket timeout must not read as an error.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await self._dispatch(str(message["data"]))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _dispatch(self, raw: str) -> None:
        try:
            request = json.loads(raw)
            reply = await self._handler(request)
        except Exception as exc:  # a bad message must not stop the listener
            log.warning("run_control_message_failed", error=type(exc).__name__)
            return
        if reply is not None:
            await self._redis.publish(request["reply_to"], json.dumps(reply))

    async def request(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a control request; the holder's reply, or None when nobody holds the run."""
        reply_to = f"{self._prefix}runs:reply:{uuid.uuid4().hex}"
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(reply_to)
            receivers = await self._redis.publish(
                self._channel, json.dumps({**payload, "reply_to": reply_to})
            )
            if not receivers:
                return None
            deadline = asyncio.get_running_loop().time() + REPLY_TIMEOUT_SECONDS
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(remaining, 0.5)
                )
                if message is not None and message.get("type") == "message":
                    reply: dict[str, Any] = json.loads(str(message["data"]))
                    return reply
            return None
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

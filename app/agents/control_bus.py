"""Reach a live run held by another process: request/reply over Redis pub/sub.

Every process listens on one control channel. A request names the run and carries a private
reply channel; only the process holding the run answers (ownership is checked there), so
the caller gets a real outcome and not a guess. No answer in time means no process holds the
run. Messages are typed models; the reply is a domain outcome, never an HTTP status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.lifecycle import raise_if_cancelling

log = structlog.get_logger(__name__)

REPLY_TIMEOUT_SECONDS = 2.0

ControlAction = Literal["cancel", "input"]
ControlOutcome = Literal["accepted", "run_not_found", "input_request_not_found", "invalid_input"]


class ControlRequest(BaseModel):
    run_id: str
    principal_id: str
    action: ControlAction
    request_id: str | None = None  # the input request answered (action "input")
    value: Any = None


class ControlReply(BaseModel):
    outcome: ControlOutcome
    detail: str = ""


class _Envelope(BaseModel):
    reply_to: str
    request: ControlRequest


# Answers a request when this process holds the run; None when it does not.
Handler = Callable[[ControlRequest], ControlReply | None]


class RunControlBus:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._channel = f"{prefix}runs:control"
        self._handler: Handler | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self, handler: Handler) -> None:
        self._handler = handler
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
        assert self._handler is not None  # noqa: S101 - set by start()
        try:
            envelope = _Envelope.model_validate_json(raw)
            reply = self._handler(envelope.request)
        except Exception as exc:  # a bad message must not stop the listener
            log.warning("run_control_message_failed", error=type(exc).__name__)
            return
        if reply is not None:
            await self._redis.publish(envelope.reply_to, reply.model_dump_json())

    async def request(self, request: ControlRequest) -> ControlReply | None:
        """Send a control request; the holder's reply, or None when nobody holds the run."""
        reply_to = f"{self._prefix}runs:reply:{uuid.uuid4().hex}"
        envelope = _Envelope(reply_to=reply_to, request=request)
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(reply_to)
            receivers = await self._redis.publish(self._channel, envelope.model_dump_json())
            if not receivers:
                return None
            deadline = asyncio.get_running_loop().time() + REPLY_TIMEOUT_SECONDS
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(remaining, 0.5)
                )
                if message is not None and message.get("type") == "message":
                    try:
                        return ControlReply.model_validate_json(str(message["data"]))
                    except ValidationError:
                        log.warning("run_control_reply_invalid")
                        return None
            return None
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

"""Reach a live run held by another process: request/reply over Redis pub/sub.

Every process has one inbox channel and one subscriber on it (one pub/sub connection per
process, whatever the number of requests). Where a run lives is in the live-run registry
(app/agents/live_runs.py), so a control request for a run nobody holds, or someone else's,
is answered from one GET, without a message. Otherwise the request goes to the holder's inbox
with a correlation id and the reply comes back to ours; the holder checks ownership again and
answers with a domain outcome, never an HTTP status. No subscriber on the holder's inbox (the
process died and its entry has not expired yet) is known at once from the publish count.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.agents.live_runs import LiveRunRegistry
from app.core.lifecycle import stop_task
from app.observability import tracing
from app.store.redis_client import listen_forever, subscribable

log = structlog.get_logger(__name__)

REPLY_TIMEOUT_SECONDS = 2.0  # a holder that has the run answers in milliseconds
LISTENER_WAIT_SECONDS = 1.0  # a request waits this long for our own inbox to be subscribed

ControlAction = Literal["cancel", "input"]
ControlOutcome = Literal["accepted", "run_not_found", "input_request_not_found", "invalid_input"]


class ControlRequest(BaseModel):
    run_id: str
    principal_id: str
    action: ControlAction
    request_id: str | None = None  # the input request answered (action "input")
    value: Any = None
    reason: str | None = None  # why a cancel (the run's error code): interrupted, rolled_back
    trace: dict[str, str] | None = None  # the asking request's trace context (tracing on)


class ControlReply(BaseModel):
    outcome: ControlOutcome
    detail: str = ""


class _RequestMessage(BaseModel):
    kind: Literal["request"] = "request"
    id: str
    reply_to: str
    request: ControlRequest


class _ReplyMessage(BaseModel):
    kind: Literal["reply"] = "reply"
    id: str
    reply: ControlReply


_MESSAGE: TypeAdapter[_RequestMessage | _ReplyMessage] = TypeAdapter(
    Annotated[_RequestMessage | _ReplyMessage, Field(discriminator="kind")]
)

# Answers a request when this process holds the run; None when it does not.
Handler = Callable[[ControlRequest], ControlReply | None]


class RunControlBus:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self.holder = uuid.uuid4().hex  # this process, in the registry and in inbox names
        self.registry = LiveRunRegistry(redis, prefix=prefix, holder=self.holder)
        self._inbox = self._inbox_of(self.holder)
        self._handler: Handler | None = None
        self._pending: dict[str, asyncio.Future[ControlReply]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def _inbox_of(self, holder: str) -> str:
        return f"{self._prefix}runs:inbox:{holder}"

    def start(self, handler: Handler) -> None:
        self._handler = handler
        self._task = asyncio.create_task(self._listen_forever(), name="run-control-bus")
        self.registry.start()

    async def aclose(self) -> None:
        await self.registry.aclose()
        await stop_task(self._task)

    # -- the runs this process holds -------------------------------------------------------
    async def announce(self, run_id: str, owner: str) -> None:
        await self.registry.announce(run_id, owner)

    async def retire(self, run_id: str) -> None:
        await self.registry.retire(run_id)

    # -- listening ---------------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        await listen_forever(
            self._listen, on_disconnect=self.listening.clear, event="run_control_bus_disconnected"
        )

    async def _listen(self) -> None:
        await subscribable(self._redis)
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._inbox)
            self.listening.set()
            while True:
                # A bounded wait: the pool's short socket timeout must not read as an error.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await self._dispatch(str(message["data"]))
        finally:
            self.listening.clear()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _dispatch(self, raw: str) -> None:
        try:
            message = _MESSAGE.validate_json(raw)
        except ValidationError:  # a bad message must not stop the listener
            log.warning("run_control_message_invalid")
            return
        if isinstance(message, _ReplyMessage):
            future = self._pending.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message.reply)
            return
        assert self._handler is not None  # noqa: S101 - set by start()
        request = message.request
        try:  # process run-control: continues the asking request's trace
            with tracing.consumer_span(
                "run-control",
                message_id=message.id,
                carrier=request.trace,
                attributes={
                    "agent_service.run.id": request.run_id,
                    "agent_service.control.action": request.action,
                },
            ):
                reply = self._handler(request)
        except Exception as exc:
            log.warning("run_control_message_failed", error=type(exc).__name__)
            return
        if reply is None:  # the run ended between the lookup and now
            reply = ControlReply(outcome="run_not_found")
        answer = _ReplyMessage(id=message.id, reply=reply)
        await self._redis.publish(message.reply_to, answer.model_dump_json())

    # -- asking ------------------------------------------------------------------------------
    async def request(self, request: ControlRequest) -> ControlReply | None:
        """The holder's reply, or None when no process holds the run. Raises RedisError."""
        live = await self.registry.lookup(request.run_id)
        if live is None or live.holder == self.holder:  # ours was answered locally already
            return None
        if live.owner != request.principal_id:
            return ControlReply(outcome="run_not_found")
        await self._wait_listening()
        request = request.model_copy(update={"trace": tracing.current_carrier()})
        message = _RequestMessage(id=uuid.uuid4().hex, reply_to=self._inbox, request=request)
        future: asyncio.Future[ControlReply] = asyncio.get_running_loop().create_future()
        self._pending[message.id] = future
        try:
            receivers = await self._redis.publish(
                self._inbox_of(live.holder), message.model_dump_json()
            )
            if not receivers:  # the holder is gone; its entry expires soon
                return None
            return await asyncio.wait_for(future, timeout=REPLY_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("run_control_reply_timeout", run_id=request.run_id)
            return None
        finally:
            self._pending.pop(message.id, None)

    async def _wait_listening(self) -> None:
        try:
            await asyncio.wait_for(self.listening.wait(), timeout=LISTENER_WAIT_SECONDS)
        except TimeoutError:
            raise RedisConnectionError("the run control inbox is not subscribed") from None

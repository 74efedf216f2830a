"""Refuse request bodies over MAX_REQUEST_BODY_BYTES with 413 problem+json.

Content-Length is checked up front; a chunked body is counted as it is read, so a client
cannot get around the limit by leaving the header out.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import send_problem


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_problem(
            send,
            scope,
            status=413,
            code="payload_too_large",
            detail=f"The request body exceeds {self.max_bytes} bytes.",
        )

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: it hands back the app's own (app/middleware/error_dialect.py).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    too_large = False  # the server rejects a malformed length itself
                if too_large:
                    return self._reject(scope, send)
                break

        counted = _CountedBody(self, scope, receive, send)
        return self.app(scope, counted.receive, counted.send)


async def _dropped() -> None:
    return None


class _CountedBody:
    """One request's receive and send under the limit. A slotted object whose two bound
    methods are the wrappers: as closures they were two functions and three cells, and an
    open stream keeps them as long as it lasts."""

    __slots__ = (
        "_inner_receive",
        "_inner_send",
        "_limit",
        "_scope",
        "answered",
        "received",
        "started",
    )

    def __init__(
        self, limit: BodySizeLimitMiddleware, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self._limit = limit
        self._scope = scope
        self._inner_receive = receive
        self._inner_send = send
        self.received = 0
        self.answered = False  # we sent the 413; whatever the app sends afterwards is dropped
        self.started = False

    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        message = await self._inner_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit.max_bytes:
                # Answer now and tell the app the client is gone: raising here would be
                # turned into a 400 by FastAPI's body parsing.
                if not self.started:
                    self.answered = True
                    await self._limit._reject(self._scope, self._inner_send)
                return {"type": "http.disconnect"}
        return message

    def send(self, message: Message) -> Awaitable[None]:
        if self.answered:
            return _dropped()  # after our 413, the app's answer goes nowhere
        self.started = self.started or message["type"] == "http.response.start"
        return self._inner_send(message)

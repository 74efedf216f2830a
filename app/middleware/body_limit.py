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

        received = 0
        answered = False  # we sent the 413; whatever the app sends afterwards is dropped
        started = False

        async def counting_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client is gone: raising here would be
                    # turned into a 400 by FastAPI's body parsing.
                    if not started:
                        answered = True
                        await self._reject(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        return self.app(scope, counting_receive, guarded_send)

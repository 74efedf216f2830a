"""X-Request-ID: accept a sane incoming one or make one, echo it, bind it into log context."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Anything else (too long, odd characters) is replaced: it ends up in logs and headers.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SANE_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: nothing is left to do once the app is called, so no frame of ours
        # lives as long as the request (app/middleware/error_dialect.py).
        if scope["type"] not in ("http", "websocket"):
            return self.app(scope, receive, send)
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope["request_id"] = request_id

        def send_with_request_id(message: Message) -> Awaitable[None]:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            return send(message)

        # Bound for the rest of this request's task, not reset after it: uvicorn runs each
        # request (and each WebSocket) in a task of its own, whose context ends with it, and
        # a request starts from a cleared one. Resetting took a context manager's generator
        # and this frame for as long as a stream stays open.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return self.app(scope, receive, send_with_request_id)

"""Marks requests to a protocol surface with its error shape (app/core/problems.py), so a 401
from auth or a 429 from the rate limiter reaches an OpenAI client in the shape its SDK parses.
Outermost, since every later layer may answer with an error."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.problems import ERROR_DIALECT_KEY
from app.core.routing import RouteTable


class ErrorDialectMiddleware:
    def __init__(self, app: ASGIApp, *, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: nothing is left to do once the app is called, so the caller
        # awaits the app's own coroutine and no frame of ours lives as long as the request
        # (a stream's hours). app/middleware/security_headers.py and body_limit.py alike.
        if scope["type"] in ("http", "websocket"):
            dialect = self.routes.error_dialect_for(scope["path"])
            if dialect is not None:
                scope[ERROR_DIALECT_KEY] = dialect
        return self.app(scope, receive, send)

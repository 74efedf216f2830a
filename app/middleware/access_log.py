"""One structured line per request, written when the response (or stream) has ended."""

from __future__ import annotations

import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.routing import OPS_PATHS, RouteTable
from app.observability.logging import access_logger


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, *, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes
        self._log = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        def send_capturing_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]  # the latter: a handshake refused with a 401/429
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and status != 101:
                status = 403  # closed before accept: the handshake was refused
            return send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            principal = scope.get("principal")
            client = scope.get("client")
            fields = {
                "method": scope.get("method", "WEBSOCKET"),
                "route": self.routes.template_for(scope),
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                "principal": principal.id if principal is not None else None,
                "client": client[0] if client else None,
            }
            if status >= 500:
                self._log.warning("request", **fields)
            else:
                self._log.info("request", **fields)

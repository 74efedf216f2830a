"""The server span of each HTTP request (only in the chain when TRACING_ENABLED).

Pure ASGI: the span is current while the app runs, so the run a request starts, the log
lines and the metrics' exemplars all name it, and it ends when the app returns, which for
a stream (SSE) is when its body has ended, not when its headers left. Named by route
template from our own table (app/core/routing.py), never by the raw path. Probes and
scrapes (OPS_PATHS) are not traced: they would drown the traces worth reading. WebSockets
are not traced as a whole (a socket lives for hours); the runs they start are.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.routing import OPS_PATHS, UNMATCHED_ROUTE, RouteTable
from app.observability import tracing

if TYPE_CHECKING:  # imported with OpenTelemetry, only when tracing is on
    from app.observability.tracing_http import ServerSpans


class TracingMiddleware:
    def __init__(self, app: ASGIApp, *, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Looked up per request (a module global): the chain is built before the lifespan
        # configures tracing, and tracing shut down means no span.
        spans: ServerSpans | None = tracing.server_spans()
        if scope["type"] != "http" or spans is None or scope["path"] in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        template = self.routes.template_for(scope)
        request = spans.start(
            scope,
            None if template == UNMATCHED_ROUTE else template,
            peer_key=tracing.PEER_SCOPE_KEY,
        )
        if request.sampled_out is not None:  # sampled out: no status to record, no wrapper
            try:
                await self.app(scope, receive, send)
            finally:
                request.end(None)
            return
        status: int | None = None

        def send_capturing_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        except Exception as exc:
            request.failed(exc)
            raise
        finally:
            request.end(status)

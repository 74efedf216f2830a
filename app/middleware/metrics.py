"""HTTP request metrics by method, route template and status; in-flight gauge.

With tracing on, each duration observation carries the request's trace id as an exemplar
(shown by /metrics in the OpenMetrics format; not in multiprocess mode, which keeps none).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.routing import RouteTable
from app.observability import metrics, tracing


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, routes: RouteTable, exemplars: bool = False) -> None:
        self.app = app
        self.routes = routes
        self.exemplars = exemplars  # TRACING_ENABLED: off, no lookup at all

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        def send_capturing_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            # Labelled by route template, never the raw path (a URL scanner must not mint
            # series); matched against our own table, see app/core/routing.py.
            metrics.HTTP_IN_FLIGHT.dec()
            labels = (scope["method"], self.routes.template_for(scope), str(status))
            metrics.labelled(metrics.HTTP_REQUESTS, *labels).inc()
            duration = metrics.labelled(metrics.HTTP_DURATION, *labels)
            exemplar = tracing.exemplar() if self.exemplars else None
            if exemplar is None:
                duration.observe(time.perf_counter() - start)
            else:
                metrics.observe_with_exemplar(duration, time.perf_counter() - start, exemplar)

"""FastAPI without the two outer layers it adds for features we leave off.

FastAPI 0.165 puts two middlewares right inside ``ServerErrorMiddleware``, around ours, on
every request: ``ExceptionTelemetryMiddleware`` (records an exception on FastAPI's own span;
our tracing is ours, so its telemetry is off) and ``AppBodyLimitMiddleware`` (its
``max_body_size``; ours is ``MAX_REQUEST_BODY_BYTES``, app/middleware/body_limit.py). Off,
both only pass the call on: one coroutine frame each for as long as a request lives, which
an open stream holds for minutes. ``LeanFastAPI`` builds FastAPI's stack and takes them
out; it refuses to start with either feature on, so it can never drop a working layer.

Given the app's RouteTable, it also puts ``DirectRoutes`` (app/api/direct_routes.py) where
FastAPI's exception middleware calls its router: the fast routes skip FastAPI's routing layers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry import TelemetryConfig
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from app.api.direct_routes import DirectRoutes, direct_routes
from app.core.routing import RouteTable

TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
}
PASS_THROUGH = (ExceptionTelemetryMiddleware, AppBodyLimitMiddleware)


class LeanFastAPI(FastAPI):
    def __init__(self, *, route_table: RouteTable | None = None, **kwargs: Any) -> None:
        if kwargs.get("max_body_size") is not None:
            raise ValueError("LeanFastAPI: request bodies are limited by our own middleware")
        super().__init__(**kwargs, telemetry=TELEMETRY_OFF)
        self.route_table = route_table

    def build_middleware_stack(self) -> ASGIApp:
        outermost = super().build_middleware_stack()  # ServerErrorMiddleware
        inner = outermost.app  # type: ignore[attr-defined]
        while isinstance(inner, PASS_THROUGH):
            inner = inner.app
        outermost.app = inner  # type: ignore[attr-defined]
        if self.route_table is not None:  # built at the first request: every route is mounted
            while not isinstance(inner, ExceptionMiddleware):
                inner = inner.app
            inner.app = DirectRoutes(
                inner.app, table=self.route_table, routes=direct_routes(self.router.routes)
            )
        return outermost

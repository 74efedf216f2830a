"""All routers in one place: ops at the root, the versioned API under API_PREFIX.

Each router is included straight into the app (one level) and recorded in the app's
RouteTable with its full prefix; see app/core/routing.py for why.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from app.api import (
    agents,
    agents_ws,
    auth,
    health,
    metrics,
    playground,
    runs,
    sessions,
    tasks,
    tasks_ws,
    tools,
)
from app.core.config import Settings
from app.core.routing import RouteTable


def _routers(settings: Settings) -> list[tuple[str, APIRouter]]:
    routers: list[tuple[str, APIRouter]] = [("", health.router)]
    if settings.ENABLE_METRICS:
        routers.append(("", metrics.router))
    routers.append(("", playground.router))
    for router in (
        auth.router,
        agents.router,
        agents_ws.router,
        runs.router,
        sessions.router,
        tasks.router,
        tasks_ws.router,
        tools.router,
    ):
        routers.append((settings.API_PREFIX, router))
    return routers


def mount_routes(app: FastAPI, settings: Settings) -> RouteTable:
    table = RouteTable()
    table.add_routes(app.routes)  # /docs, /openapi.json: plain routes FastAPI added itself
    for prefix, router in _routers(settings):
        app.include_router(router, prefix=prefix)
        table.add_router(router, prefix=prefix)
    return table

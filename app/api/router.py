"""All routers in one place: ops at the root, the versioned API under API_PREFIX.

Each router is included straight into the app (one level) and recorded in the app's
RouteTable with its full prefix; see app/core/routing.py for why.
"""

from __future__ import annotations

from typing import Any

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
    stream_routes,
    task_memory,
    tasks,
    tasks_ws,
    tenants,
    tools,
    usage,
    users,
    webhooks,
)
from app.api.deps import TOKEN_PATH
from app.core.config import Settings
from app.core.routing import RouteTable


def _routers(settings: Settings) -> list[tuple[str, APIRouter]]:
    routers: list[tuple[str, APIRouter]] = [("", health.router)]
    if settings.ENABLE_METRICS:
        routers.append(("", metrics.router))
    routers.append(("", playground.router))
    for router in (  # the agent routes first: matched in order, they take most requests
        agents.router,
        agents_ws.router,
        runs.router,
        auth.router,
        users.router,
        tenants.router,
        sessions.router,
        tasks.router,
        task_memory.router,
        tasks_ws.router,
        stream_routes.router,
        tools.router,
        usage.router,
    ):
        routers.append((settings.API_PREFIX, router))
    if settings.WEBHOOKS_ENABLED:
        routers.append((settings.API_PREFIX, webhooks.router))
    return routers


def mount_routes(app: FastAPI, settings: Settings, *, routes: RouteTable) -> None:
    """Include every router and record its full templates in ``routes``."""
    _point_token_url_at(app, f"{settings.API_PREFIX}{TOKEN_PATH}")
    routes.add_routes(app.routes)  # /docs, /openapi.json: plain routes FastAPI added itself
    for prefix, router in _routers(settings):
        app.include_router(router, prefix=prefix)
        routes.add_router(router, prefix=prefix)


def _point_token_url_at(app: FastAPI, token_url: str) -> None:
    """The password flow's tokenUrl follows API_PREFIX (the scheme object is shared by every
    app in the process, so the app's own document is edited, not the scheme)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemes = document.get("components", {}).get("securitySchemes", {})
        for scheme in schemes.values():
            password = scheme.get("flows", {}).get("password")
            if password is not None:
                password["tokenUrl"] = token_url
        return document

    app.openapi = openapi  # type: ignore[method-assign]

"""The app factory. Servers import ``app.entrypoints.asgi:app``; tests and the CLI call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from app.api.errors import install_exception_handlers
from app.api.router import mount_routes
from app.core.config import Settings
from app.core.settings_loader import load_settings
from app.middleware import build_middleware
from app.observability.logging import configure_logging
from app.services import open_services

log = structlog.get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    services = await open_services(settings)
    app.state.services = services
    services.start_worker()
    log.info(
        "startup",
        environment=settings.ENVIRONMENT,
        redis=settings.REDIS_URL is not None,
        auth=settings.AUTH_ENABLED,
        rate_limit=settings.RATE_LIMIT_ENABLED,
        worker=services.worker is not None,
    )
    try:
        yield
    finally:
        await services.aclose()
        log.info("shutdown")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings)
    docs = settings.DOCS_ENABLED
    app = FastAPI(
        title=settings.API_TITLE,
        version=settings.API_VERSION,
        debug=False,  # never render tracebacks to clients, whatever DEBUG says
        lifespan=lifespan,
        middleware=build_middleware(settings),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    install_exception_handlers(app)
    app.state.route_table = mount_routes(app, settings)
    return app

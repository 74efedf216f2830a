"""The app factory. Servers import ``app.entrypoints.asgi:app``; tests and the CLI call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI

from app.api.docs import mount_docs
from app.api.errors import install_exception_handlers
from app.api.lean_app import LeanFastAPI
from app.api.router import mount_routes
from app.core.config import Settings
from app.core.routing import RouteTable
from app.core.settings_loader import load_settings
from app.middleware import build_middleware
from app.observability.logging import configure_logging
from app.observability.tracing import configure_tracing, shutdown_tracing
from app.protocols import Lifespan, mount_protocols
from app.services import AppServices, State, build_services, describe_services

log = structlog.get_logger(__name__)


def _lifespan(
    services: AppServices, protocol_lifespans: list[Lifespan]
) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        async with services.running(), AsyncExitStack() as protocols:
            for protocol_lifespan in protocol_lifespans:  # after the services they use
                await protocols.enter_async_context(protocol_lifespan())
            log.info("startup", **describe_services(services))
            for setting, why in services.settings.production_warnings():
                log.warning("production_setting_unsafe", setting=setting, detail=why)
            yield State(services=services)
        await shutdown_tracing()  # after the work: its last spans are exported too
        log.info("shutdown")

    return lifespan


def create_app(settings: Settings | None = None, *, services: AppServices | None = None) -> FastAPI:
    """Build the app; ``services`` may be passed in (tests and benchmarks inspect them)."""
    settings = settings or load_settings()
    configure_logging(settings)
    configure_tracing(settings, role="api")  # before the services: the LLM client is traced
    services = services or build_services(settings)
    routes = RouteTable()
    protocol_lifespans: list[Lifespan] = []  # filled by mount_protocols, entered at start-up
    docs = settings.DOCS_ENABLED
    app = LeanFastAPI(
        route_table=routes,
        title=settings.API_TITLE,
        version=settings.API_VERSION,
        debug=False,  # never render tracebacks to clients, whatever DEBUG says
        lifespan=_lifespan(services, protocol_lifespans),
        middleware=build_middleware(
            settings,
            routes=routes,
            authenticator=services.authenticator,
            rate_limiter=services.rate_limiter,
            auth_failures=services.auth_failures,
            tenant_limits=services.runs.limits,
        ),
        docs_url=None,  # /docs and /redoc: app/api/docs.py, assets served locally
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        # FastAPI's own OpenTelemetry spans start once any global provider is set, believe
        # every incoming traceparent and run outside our chain: LeanFastAPI turns them off,
        # ours (TRACING_*) instead.
    )
    install_exception_handlers(app, routes=routes)
    mount_routes(app, settings, routes=routes)
    protocol_lifespans.extend(mount_protocols(app, settings, routes=routes))
    mount_docs(app, settings, routes=routes)
    return app

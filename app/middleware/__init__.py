"""The middleware chain, built in one place from Settings, outer to inner.

Order matters: the error dialect first (any later layer may answer with an error, in the
shape of the path's protocol); request context next so every later line carries the request
id; the trace's server span next, so access log lines, metrics' exemplars and the runs a
request starts name it; access log and metrics outside auth and rate limiting so 401s and
429s are logged and counted; the failed-authentication limit just outside auth, so an IP
past it is refused before its credentials are checked and every 401 auth gives is counted;
auth before the rate limiter so limits are keyed by the verified principal.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.core.config import Settings
from app.core.routing import RouteTable
from app.middleware.access_log import AccessLogMiddleware
from app.middleware.auth_failures import AuthFailureLimitMiddleware
from app.middleware.authentication import AuthenticationMiddleware
from app.middleware.body_limit import BodySizeLimitMiddleware
from app.middleware.error_dialect import ErrorDialectMiddleware
from app.middleware.metrics import MetricsMiddleware
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.request_context import RequestContextMiddleware
from app.middleware.security_headers import SecurityHeadersMiddleware
from app.middleware.tracing import TracingMiddleware
from app.security.authenticator import Authenticator
from app.security.tenant_limits import TenantLimits
from app.store.auth_failures import AuthFailureLimiter
from app.store.rate_limits import RequestRateLimiter


def build_middleware(
    settings: Settings,
    *,
    routes: RouteTable,
    authenticator: Authenticator,
    rate_limiter: RequestRateLimiter,
    auth_failures: AuthFailureLimiter | None = None,
    tenant_limits: TenantLimits | None = None,
) -> list[Middleware]:
    """Each middleware gets its collaborators here, never from the app at request time."""
    # The password login (app/api/deps.py TOKEN_PATH): anonymous, keyed by client address.
    login_paths = frozenset({f"{settings.API_PREFIX}/auth/token"})
    chain: list[Middleware] = []
    # Surfaces with an error shape of their own (OpenAI's, A2A's JSON-RPC errors).
    if settings.PROTOCOL_OPENAI_ENABLED or settings.PROTOCOL_A2A_ENABLED:
        chain.append(Middleware(ErrorDialectMiddleware, routes=routes))
    if settings.REQUEST_CONTEXT_ENABLED:
        chain.append(Middleware(RequestContextMiddleware))
    if settings.TRACING_ENABLED:
        chain.append(Middleware(TracingMiddleware, routes=routes))
    if settings.ACCESS_LOG_ENABLED:
        chain.append(Middleware(AccessLogMiddleware, routes=routes))
    if settings.ENABLE_METRICS:
        chain.append(
            Middleware(MetricsMiddleware, routes=routes, exemplars=settings.TRACING_ENABLED)
        )
    if settings.SECURITY_HEADERS_ENABLED:
        chain.append(Middleware(SecurityHeadersMiddleware, hsts_seconds=settings.HSTS_SECONDS))
    if settings.MAX_REQUEST_BODY_BYTES:
        chain.append(Middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_REQUEST_BODY_BYTES))
    if settings.CORS_ORIGINS:
        chain.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.CORS_ORIGINS,
                allow_credentials=settings.CORS_ALLOW_CREDENTIALS,
                allow_methods=["*"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-API-Key",
                    "X-Request-ID",
                    "Idempotency-Key",
                    "Last-Event-ID",
                    "Cache-Control",
                    "traceparent",
                    "tracestate",
                    "Mcp-Session-Id",  # MCP's streamable HTTP, from a browser client
                    "MCP-Protocol-Version",
                    "A2A-Version",
                ],
                expose_headers=[
                    "X-Request-ID",
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                    "Retry-After",
                    "X-Cache",
                    "Location",
                    "Mcp-Session-Id",
                ],
            )
        )
    if settings.AUTH_ENABLED and auth_failures is not None:
        chain.append(
            Middleware(
                AuthFailureLimitMiddleware,
                limiter=auth_failures,
                login_paths=login_paths,
                routes=routes,
            )
        )
    if settings.AUTH_ENABLED:
        chain.append(
            Middleware(
                AuthenticationMiddleware,
                authenticator=authenticator,
                anonymous_paths=login_paths,
                routes=routes,
            )
        )
    if settings.RATE_LIMIT_ENABLED:
        chain.append(
            Middleware(
                RateLimitMiddleware,
                limiter=rate_limiter,
                routes=routes,
                address_keyed_paths=login_paths,
                tenants=tenant_limits,
            )
        )
    return chain

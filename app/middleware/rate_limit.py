"""Rate limiting as pure ASGI middleware over ``limits.aio``.

Keyed by the verified principal, else the client address (uvicorn/gunicorn resolve
X-Forwarded-For only from FORWARDED_ALLOW_IPS, so a client cannot pick its own bucket). The
login route is always keyed by the client address: a key attached to a login must not buy
more password attempts.
Buckets are per route template: ``/v1/sessions/{id}`` is one bucket whatever the id.
Only the response start is touched (to add headers), so streams pass through unbuffered.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import send_problem
from app.core.routing import OPS_PATHS, RouteTable
from app.observability import metrics
from app.security.principals import DEFAULT_TENANT
from app.security.tenant_limits import TenantLimits
from app.store.rate_limits import RateLimitBackendDown, RequestRateLimiter, bucket_identity


def _identity(scope: Scope, *, by_address: bool) -> str:
    principal = None if by_address else scope.get("principal")
    return bucket_identity(principal.id if principal is not None else None, scope.get("client"))


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RequestRateLimiter,
        routes: RouteTable,
        address_keyed_paths: frozenset[str] = frozenset(),
        tenants: TenantLimits | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.tenants = tenants  # a tenant's own default limit (its policy)
        self.routes = routes
        self.address_keyed_paths = address_keyed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        route = self.routes.template_for(scope)
        # A WebSocket handshake counts once, in a bucket of its own ("WS" + route).
        method = scope["method"] if scope["type"] == "http" else "WS"
        by_address = scope["path"] in self.address_keyed_paths
        tenant_limit = None
        principal = scope.get("principal")
        if self.tenants is not None and principal is not None and not by_address:
            if principal.tenant != DEFAULT_TENANT:  # the default tenant: no lookup at all
                tenant_limit = (await self.tenants.of(principal.tenant)).rate_limit
        try:
            decision = await self.limiter.check(
                identity=_identity(scope, by_address=by_address),
                method=method,
                route=route,
                default=tenant_limit,
            )
        except RateLimitBackendDown:
            await send_problem(
                send,
                scope,
                status=503,
                code="dependency_unavailable",
                detail="The rate limiter is unavailable; retry shortly.",
                headers={"Retry-After": "1"},
            )
            return
        headers = decision.headers()
        if not decision.allowed:
            metrics.RATE_LIMIT_REJECTIONS.labels(route=route).inc()
            await send_problem(
                send,
                scope,
                status=429,
                code="rate_limited",
                detail=f"Rate limit of {decision.limit} requests exceeded; "
                f"retry in {headers['Retry-After']} s.",
                headers=headers,
            )
            return
        if decision.degraded or scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in headers.items():
                    response_headers[name] = value
            return send(message)

        await self.app(scope, receive, send_with_headers)

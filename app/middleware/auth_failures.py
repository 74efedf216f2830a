"""Limit failed authentications per client IP, before any credential is checked.

Runs outside the authentication middleware. A request that carries credentials (or signs in
on the token route) from an IP past AUTH_FAILURE_LIMIT gets 429 ``too_many_auth_failures``
without its credentials being looked at. Otherwise it goes on, and a 401 coming back (a bad
token or key from the authentication middleware, a wrong password from the login route) is
counted against the IP. Requests without credentials are neither checked nor counted: a 401
for missing credentials guesses nothing.

The IP is ``scope["client"]``: uvicorn/gunicorn take it from X-Forwarded-For only when the
peer is in FORWARDED_ALLOW_IPS, so a client cannot choose it.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import send_problem
from app.core.routing import OPS_PATHS, RouteTable
from app.middleware.authentication import carries_credentials
from app.observability import metrics
from app.store.auth_failures import AuthFailureBackendDown, AuthFailureLimiter

_RESPONSE_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AuthFailureLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: AuthFailureLimiter,
        login_paths: frozenset[str],
        routes: RouteTable,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.login_paths = login_paths
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in OPS_PATHS
            or (scope["path"] not in self.login_paths and not carries_credentials(scope))
        ):
            await self.app(scope, receive, send)
            return
        ip = client_ip(scope)
        try:
            retry_after = await self.limiter.retry_after(ip)
        except AuthFailureBackendDown:
            await send_problem(
                send,
                scope,
                status=503,
                code="dependency_unavailable",
                detail="Credentials cannot be checked right now; retry shortly.",
                headers={"Retry-After": "1"},
            )
            return
        if retry_after is not None:
            metrics.RATE_LIMIT_REJECTIONS.labels(route=self.routes.template_for(scope)).inc()
            await send_problem(
                send,
                scope,
                status=429,
                code="too_many_auth_failures",
                detail=f"Too many failed authentications from this address (at most "
                f"{self.limiter.item.amount} per {self.limiter.item.get_expiry()} s); "
                f"retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
            )
            return

        def send_counting_failures(message: Message) -> Awaitable[None]:
            if message["type"] in _RESPONSE_STARTS and message["status"] == 401:
                return self._count_then_send(ip, message, send)
            return send(message)

        await self.app(scope, receive, send_counting_failures)

    async def _count_then_send(self, ip: str, message: Message, send: Send) -> None:
        await self.limiter.record_failure(ip)  # before the client can try again
        await send(message)

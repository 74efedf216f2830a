"""Authenticate in middleware, authorise in dependencies (app/api/deps.py).

A verified principal is left in ``scope["principal"]``; no credentials leaves it unset and
the route's dependency decides. Bad credentials are answered 401 here, before any work.
Browsers cannot set headers on a WebSocket, so a WebSocket may carry its token as the
``bearer, <token>`` subprotocol pair or a ``token`` query parameter (never logged: uvicorn's
access log is off and server log lines lose their query strings, app/observability/redaction.py).

The login route is anonymous: credentials sent to it are never authenticated. Swagger UI's
password flow always adds ``Authorization: Basic`` with its (empty) client id and secret, which
RFC 6749 2.3.1 lets a server without registered clients ignore; and a key or token attached to
a login must not move it out of its client IP's rate-limit and failed-login buckets.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import structlog
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.problems import send_problem
from app.core.routing import OPS_PATHS, RouteTable
from app.observability import metrics
from app.security.authenticator import AuthenticationFailed, Authenticator

log = structlog.get_logger(__name__)

_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="agent-service"'}


def carries_credentials(scope: Scope) -> bool:
    authorization, api_key = _credentials(scope)
    return authorization is not None or api_key is not None


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    authorization = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
    if scope["type"] == "websocket" and authorization is None and api_key is None:
        authorization = _websocket_token(scope)
    return authorization, api_key


def _websocket_token(scope: Scope) -> str | None:
    protocols = scope.get("subprotocols") or []
    if len(protocols) >= 2 and protocols[0].lower() == "bearer":
        return f"Bearer {protocols[1]}"
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if key == "token" and value:
            return f"Bearer {value}"
    return None


class AuthenticationMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        anonymous_paths: frozenset[str] = frozenset(),
        routes: RouteTable | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.anonymous_paths = OPS_PATHS | anonymous_paths
        self.routes = routes  # a path's own challenge (MCP's names its metadata)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.anonymous_paths:
            await self.app(scope, receive, send)
            return
        authorization, api_key = _credentials(scope)
        if authorization is None and api_key is None:
            await self.app(scope, receive, send)
            return
        try:
            scope["principal"] = await self.authenticator.authenticate(
                authorization=authorization, api_key=api_key
            )
            del authorization, api_key  # not held for as long as a stream stays open
        except AuthenticationFailed as exc:
            metrics.AUTH_FAILURES.labels(reason=exc.reason).inc()
            await self._deny(scope, send, status=401, code=exc.reason, detail=exc.detail)
            return
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("auth_backend_unavailable", error=type(exc).__name__)
            await self._deny(
                scope,
                send,
                status=503,
                code="dependency_unavailable",
                detail="Credentials cannot be checked right now; retry shortly.",
            )
            return
        await self.app(scope, receive, send)

    def _challenge(self, scope: Scope) -> dict[str, str]:
        challenge = self.routes.auth_challenge_for(scope["path"]) if self.routes else None
        return {"WWW-Authenticate": challenge(scope)} if challenge else _WWW_AUTHENTICATE

    async def _deny(self, scope: Scope, send: Send, *, status: int, code: str, detail: str) -> None:
        # A WebSocket handshake gets the same problem+json answer (see send_problem).
        headers = self._challenge(scope) if status == 401 else {"Retry-After": "1"}
        await send_problem(send, scope, status=status, code=code, detail=detail, headers=headers)

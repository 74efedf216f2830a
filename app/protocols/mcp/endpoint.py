"""/mcp: the SDK's streamable-HTTP session manager, behind our middleware, as a plain ASGI
endpoint of the FastAPI app (no second server).

The middleware chain already ran (request id, access log, metrics, body limit, auth, rate
limit); here an anonymous caller is refused with the 401 the MCP authorization spec asks for
(``WWW-Authenticate`` naming the protected-resource metadata), and the caller's principal is
handed to the SDK as its ``user``, so a stateful session answers only the principal that
opened it (the SDK compares it on every request, and answers 404 to anyone else).

A session manager runs once (its ``run()`` cannot be entered again), so each lifespan makes
its own: an app started twice (tests) gets a fresh one each time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    StreamableHTTPSessionManager,
)
from starlette.types import Receive, Scope, Send

from app.core.config import Settings
from app.core.problems import send_problem
from app.protocols.mcp.challenge import www_authenticate
from app.security.principals import AUTH_DISABLED_PRINCIPAL, Principal


def sdk_user(principal: Principal) -> AuthenticatedUser:
    """The principal as the SDK's authenticated user: the identity sessions are bound to."""
    return AuthenticatedUser(
        AccessToken(
            token="",  # never compared: the middleware verified the credentials  # noqa: S106
            client_id=principal.id,
            scopes=sorted(principal.scopes),
            subject=principal.id,
        )
    )


class McpEndpoint:
    def __init__(self, server: Server[Any, Any], settings: Settings) -> None:
        self._server = server
        self._settings = settings
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        manager = StreamableHTTPSessionManager(
            app=self._server,
            # SSE answers, so progress and elicitation reach the client during a call.
            json_response=False,
            stateless=self._settings.MCP_STATELESS,
            # Ours (MAX_REQUEST_BODY_BYTES) applies first; the SDK's must not be tighter.
            max_request_body_size=self._settings.MAX_REQUEST_BODY_BYTES
            or DEFAULT_MAX_REQUEST_BODY_SIZE,
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("principal")
        if not self._settings.AUTH_ENABLED:
            principal = AUTH_DISABLED_PRINCIPAL
        if not isinstance(principal, Principal):
            await send_problem(
                send,
                scope,
                status=401,
                code="unauthorized",
                detail="Send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'.",
                headers={"WWW-Authenticate": www_authenticate(scope, self._settings.PUBLIC_URL)},
            )
            return
        manager = self._manager
        if manager is None:  # between lifespans: starting or stopping
            await send_problem(
                send,
                scope,
                status=503,
                code="service_unavailable",
                detail="The MCP endpoint is starting or stopping; retry shortly.",
                headers={"Retry-After": "1"},
            )
            return
        scope["user"] = sdk_user(principal)
        await manager.handle_request(scope, receive, send)

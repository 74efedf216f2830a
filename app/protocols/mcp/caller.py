"""Who calls a tool, and with which services: read from the HTTP request that carried the
JSON-RPC message (the SDK hands it to handlers as ``request_context.request``).

The middleware authenticated the request (``scope["principal"]``); ``authorize`` from
app/api/deps.py applies the same scope rule as every other route. A JSON-RPC message always
arrives in an HTTP request, so a handler without one is a bug, not a client error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.lowlevel.server import request_ctx
from starlette.requests import Request

from app.api.deps import authorize, services_of
from app.core.config import Settings
from app.security.principals import Principal
from app.services import AppServices


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    services: AppServices

    @property
    def settings(self) -> Settings:
        return self.services.settings


def current_request() -> Request:
    request: Any = request_ctx.get().request
    if not isinstance(request, Request):
        raise RuntimeError("an MCP handler ran without the HTTP request that carried it")
    return request


def current_caller(*required: str) -> Caller:
    """The caller of the message being handled, holding ``required`` scopes (AppError 401/403
    otherwise)."""
    request = current_request()
    services = services_of(request)
    principal = authorize(
        request.scope.get("principal"),
        required=frozenset(required),
        auth=services.settings.AUTH_ENABLED,
    )
    return Caller(principal=principal, services=services)

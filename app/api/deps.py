"""Dependencies, declared once as Annotated aliases. Routes read ``principal: AdminDep``.

Authentication happened in middleware (``scope["principal"]``); these only authorise.
The OAuth2 and API-key schemes are listed so OpenAPI shows both security schemes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security, WebSocket
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes

from app.agents.service import RunService
from app.core.config import Settings
from app.core.errors import Forbidden, Unauthorized
from app.security.principals import AUTH_DISABLED_PRINCIPAL, Principal
from app.services import AppServices

SCOPE_DESCRIPTIONS = {
    "agents:run": "Run agents (invoke, stream, WebSocket).",
    "sessions:read": "Read own sessions.",
    "sessions:write": "Create and delete own sessions.",
    "tasks:read": "Read own background tasks.",
    "tasks:write": "Submit and control own background tasks.",
    "admin": "Manage API keys; implies every other scope.",
}

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token", scopes=SCOPE_DESCRIPTIONS, auto_error=False
)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# Dependencies are async on purpose: FastAPI runs plain `def` dependencies in a thread pool,
# a thread hop per request for what is an attribute read.
ServicesDep = Annotated[AppServices, Depends(get_services)]


async def get_runs(request: Request) -> RunService:
    runs: RunService = request.app.state.services.runs
    return runs


RunServiceDep = Annotated[RunService, Depends(get_runs)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_principal(
    security_scopes: SecurityScopes,
    request: Request,
    settings: SettingsDep,
    _bearer: Annotated[str | None, Depends(oauth2_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    if not settings.AUTH_ENABLED:
        return AUTH_DISABLED_PRINCIPAL
    principal: Principal | None = request.scope.get("principal")
    if principal is None:
        raise Unauthorized("Send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'.")
    required = frozenset(security_scopes.scopes)
    if not principal.has_scopes(required):
        missing = " ".join(sorted(required - principal.scopes))
        raise Forbidden(f"Missing scope: {missing}.", code="insufficient_scope")
    return principal


PrincipalDep = Annotated[Principal, Security(current_principal)]
AgentsRunDep = Annotated[Principal, Security(current_principal, scopes=["agents:run"])]
SessionsReadDep = Annotated[Principal, Security(current_principal, scopes=["sessions:read"])]
SessionsWriteDep = Annotated[Principal, Security(current_principal, scopes=["sessions:write"])]
TasksReadDep = Annotated[Principal, Security(current_principal, scopes=["tasks:read"])]
TasksWriteDep = Annotated[Principal, Security(current_principal, scopes=["tasks:write"])]
AdminDep = Annotated[Principal, Security(current_principal, scopes=["admin"])]


def websocket_principal(websocket: WebSocket, required: frozenset[str]) -> Principal | None:
    """WebSockets cannot use the OAuth2 dependencies (they read a Request): same rules here.
    None means refuse the handshake."""
    settings: Settings = websocket.app.state.settings
    if not settings.AUTH_ENABLED:
        return AUTH_DISABLED_PRINCIPAL
    principal: Principal | None = websocket.scope.get("principal")
    if principal is None or not principal.has_scopes(required):
        return None
    return principal

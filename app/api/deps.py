"""Dependencies, declared once as Annotated aliases, and the one way to reach app state.

Routes read ``principal: AdminDep, runs: RunServiceDep``. The lifespan yields a typed
``State`` (app/services.py); ``services_of`` is the only reader of it, for HTTP routes and
WebSockets alike. Authentication happened in middleware (``scope["principal"]``); the
principal dependencies only authorise. The OAuth2 and API-key schemes are listed so OpenAPI
shows both security schemes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes
from starlette.requests import HTTPConnection

from app.agents.service import RunService
from app.agents.sessions import SessionService
from app.core.config import Settings
from app.core.errors import AppError, Forbidden, Unauthorized
from app.security.principals import AUTH_DISABLED_PRINCIPAL, Principal
from app.security.scopes import Scope
from app.services import AppServices
from app.tasks.service import TaskService

# The token URL is a placeholder here: mount_routes writes API_PREFIX + "/auth/token" into the
# app's OpenAPI document (app/api/router.py).
TOKEN_PATH = "/auth/token"  # noqa: S105 - a route, not a secret
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_PATH,
    scopes={scope.value: scope.description for scope in Scope},
    auto_error=False,
)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


def services_of(connection: HTTPConnection) -> AppServices:
    """The lifespan's services, for a Request or a WebSocket."""
    services: AppServices = connection.state.services
    return services


# Dependencies are async on purpose: FastAPI runs plain `def` dependencies in a thread pool,
# a thread hop per request for what is an attribute read.
async def get_services(connection: HTTPConnection) -> AppServices:
    return services_of(connection)


async def get_settings(connection: HTTPConnection) -> Settings:
    return services_of(connection).settings


async def get_runs(connection: HTTPConnection) -> RunService:
    return services_of(connection).runs


async def get_sessions(connection: HTTPConnection) -> SessionService:
    return services_of(connection).sessions


async def get_tasks(connection: HTTPConnection) -> TaskService:
    return services_of(connection).tasks


ServicesDep = Annotated[AppServices, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunServiceDep = Annotated[RunService, Depends(get_runs)]
SessionServiceDep = Annotated[SessionService, Depends(get_sessions)]
TaskServiceDep = Annotated[TaskService, Depends(get_tasks)]


def authorize(principal: Principal | None, *, required: frozenset[str], auth: bool) -> Principal:
    """The rule for every transport: who may call what. Raises 401/403 problems."""
    if not auth:
        return AUTH_DISABLED_PRINCIPAL
    if principal is None:
        raise Unauthorized("Send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'.")
    if not principal.has_scopes(required):
        missing = " ".join(sorted(required - principal.scopes))
        raise Forbidden(f"Missing scope: {missing}.", code="insufficient_scope")
    return principal


async def current_principal(
    security_scopes: SecurityScopes,
    connection: HTTPConnection,
    _bearer: Annotated[str | None, Depends(oauth2_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    # The two schemes are here for the OpenAPI document; the middleware authenticated. The
    # settings are read directly: one dependency fewer on every authorised request.
    return authorize(
        connection.scope.get("principal"),
        required=frozenset(security_scopes.scopes),
        auth=services_of(connection).settings.AUTH_ENABLED,
    )


AGENTS_RUN = frozenset({Scope.AGENTS_RUN})  # what AgentsRunDep requires


def allowed_caller(connection: HTTPConnection, required: frozenset[str]) -> Principal | None:
    """What ``Security(current_principal, scopes=required)`` gives, or None where it would
    refuse: for a fast route's resolver (app/api/fast_routes.py), which then lets FastAPI's
    path answer the 401/403, and for a WebSocket's handshake (refused with 1008)."""
    try:
        return authorize(
            connection.scope.get("principal"),
            required=required,
            auth=services_of(connection).settings.AUTH_ENABLED,
        )
    except AppError:
        return None


async def run_caller_arguments(
    request: Request, _body: object, _response: Response
) -> dict[str, Any] | None:
    """A fast route's resolver for the endpoints that read their own body: what FastAPI
    solves for ``(http: Request, principal: AgentsRunDep, cache_control: CacheControl)``."""
    principal = allowed_caller(request, AGENTS_RUN)
    if principal is None:
        return None
    return {
        "http": request,
        "principal": principal,
        "cache_control": request.headers.get("cache-control"),
    }


PrincipalDep = Annotated[Principal, Security(current_principal)]
AgentsRunDep = Annotated[Principal, Security(current_principal, scopes=[Scope.AGENTS_RUN])]
SessionsReadDep = Annotated[Principal, Security(current_principal, scopes=[Scope.SESSIONS_READ])]
SessionsWriteDep = Annotated[Principal, Security(current_principal, scopes=[Scope.SESSIONS_WRITE])]
TasksReadDep = Annotated[Principal, Security(current_principal, scopes=[Scope.TASKS_READ])]
TasksWriteDep = Annotated[Principal, Security(current_principal, scopes=[Scope.TASKS_WRITE])]
WebhooksDep = Annotated[Principal, Security(current_principal, scopes=[Scope.WEBHOOKS])]
TenantAdminDep = Annotated[Principal, Security(current_principal, scopes=[Scope.TENANT_ADMIN])]
AdminDep = Annotated[Principal, Security(current_principal, scopes=[Scope.ADMIN])]

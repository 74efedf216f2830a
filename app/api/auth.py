"""Auth routes: password login for a JWT, logout, who-am-I, API key management (admin).

User management (admin) lives in app/api/users.py under the same ``/auth`` prefix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import PrincipalDep, ServicesDep, SettingsDep, TenantAdminDep
from app.api.responses import (
    API_KEY_NOT_FOUND,
    LOGIN_UNAUTHORIZED,
    LOGIN_UNPROCESSABLE,
    ProblemDoc,
    problems,
)
from app.api.schemas.auth import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    PrincipalResponse,
    TokenResponse,
)
from app.api.tenant_scope import TENANT_NOT_FOUND, managed_tenant, may_manage
from app.api.users import TenantQuery
from app.core.errors import AppError, NotFound, Unauthorized, Unprocessable
from app.security.accounts import (
    authenticate_user,
    create_api_key,
    principal_for_user,
    revoke_api_key,
)
from app.security.passwords import MAX_PASSWORD_BYTES, PasswordTooLong
from app.security.scopes import Scope
from app.security.tokens import issue_access_token
from app.security.users import refuse_admin_outside_default

router = APIRouter(prefix="/auth", tags=["auth"])

LOGOUT_BAD_REQUEST = ProblemDoc(
    "The credentials are not a token this service issued (an API key, or an external "
    "identity provider's token): there is nothing to sign out.",
    (
        (
            "not_a_session_token",
            "Logout revokes a bearer token from POST /v1/auth/token; revoke API keys with "
            "DELETE /v1/auth/api-keys/{key_id}.",
        ),
    ),
)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=problems(docs={401: LOGIN_UNAUTHORIZED, 422: LOGIN_UNPROCESSABLE}),
    summary="Sign in: exchange username and password for a bearer token",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    services: ServicesDep,
    settings: SettingsDep,
    response: Response,
) -> TokenResponse:
    """The OAuth2 password flow (form fields `username`, `password`, optional `scope`): a
    JWT to send as `Authorization: Bearer <token>` until `expires_in` seconds have passed.
    `scope` (space-separated) may ask for fewer scopes than the user holds, never more.

    Anyone may call it; it is rate limited more tightly than other routes (10 a minute per
    client address by default, RATE_LIMIT_ROUTES), and failed sign-ins count towards the
    address's AUTH_FAILURE_LIMIT (past it: 429 `too_many_auth_failures`). Credentials sent
    with it (`Authorization`, `X-API-Key`: Swagger UI's empty Basic client credentials, for
    one) are ignored. A wrong username and a wrong password get the same 401
    `invalid_credentials`. The answer is never cached (`Cache-Control: no-store`).
    """
    try:
        services.hasher.check_length(form.password)
    except PasswordTooLong:
        raise Unprocessable(
            f"password must be at most {MAX_PASSWORD_BYTES} bytes", code="password_too_long"
        ) from None
    user = await authenticate_user(
        users=services.users, hasher=services.hasher, username=form.username, password=form.password
    )
    if user is None:
        raise Unauthorized("Incorrect username or password.", code="invalid_credentials")
    principal = principal_for_user(user)
    scopes = principal.scopes
    if form.scopes:  # a client may ask for fewer scopes than the user holds, never more
        scopes = scopes & frozenset(form.scopes)
    issued = issue_access_token(
        settings=settings, key=services.keys.signing_key, subject=principal.id, scopes=scopes
    )
    # RFC 6749 5.1: no cache (browser, proxy) may keep a response carrying a token.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=" ".join(sorted(scopes)),
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(401, docs={400: LOGOUT_BAD_REQUEST}),
    summary="Sign out: revoke the bearer token sent with this request",
)
async def logout(request: Request, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Revokes the token in `Authorization` on every replica until it would have expired:
    its next use gets 401 `token_revoked`. The user's other tokens keep working (an admin
    ends them all with POST /v1/auth/users/{username}/revoke-tokens). Calling it again
    with the same token is 401 (the token is no longer valid)."""
    _, _, token = request.headers.get("authorization", "").partition(" ")
    if principal.kind != "user" or not token.strip():
        raise AppError(LOGOUT_BAD_REQUEST.examples[0][1], status=400, code="not_a_session_token")
    verified = services.authenticator.verified_token(token.strip())
    await services.user_admin.sign_out(principal.name, verified.jti, expires_at=verified.expires_at)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/me",
    response_model=PrincipalResponse,
    responses=problems(401),
    summary="Who am I: the caller's identity and scopes",
)
async def me(principal: PrincipalDep) -> PrincipalResponse:
    """The principal behind the credentials sent: a user (`user:<name>`) signed in with a
    token, or an API key (`key:<id>`), with its scopes. Any valid credentials."""
    return PrincipalResponse(
        id=principal.id,
        kind=principal.kind,
        name=principal.name,
        scopes=sorted(principal.scopes),
        tenant=principal.tenant,
    )


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 422, docs={404: TENANT_NOT_FOUND}),
    summary="Create an API key (shown once)",
)
async def create_key(
    body: ApiKeyCreate, principal: TenantAdminDep, services: ServicesDep
) -> ApiKeyCreated:
    """A new API key with the given scopes, for `X-API-Key`. The key itself is in this
    answer only: the service keeps just its hash. An API key is a principal of its own:
    sessions and tasks it creates belong to the key. It stops working at `expires_at`
    (or `expires_in` seconds from now; unset = never: 401 `api_key_expired`), and when the
    user who made it is disabled or deleted (401 `api_key_revoked`). With `tenant_id` its
    principal belongs to that tenant and cannot hold `admin`. Needs the `admin` scope, or
    `tenant:admin` for its own tenant; not idempotent (each call makes a new key)."""
    requested = body.tenant_id or principal.tenant
    tenant = await managed_tenant(principal, requested, services.tenants)
    refuse_admin_outside_default(tenant, body.scopes)
    created = await create_api_key(
        store=services.api_keys,
        pepper=services.keys.api_key_pepper,
        name=body.name,
        scopes=frozenset(body.scopes),
        created_by=principal.id,
        expires_at=body.expiry(),
        tenant=tenant,
    )
    return ApiKeyCreated(**created.record.model_dump(), key=created.plaintext)


@router.get(
    "/api-keys",
    response_model=ApiKeyList,
    responses=problems(401, 403, docs={404: TENANT_NOT_FOUND}),
    summary="List the API keys",
)
async def list_keys(
    principal: TenantAdminDep, services: ServicesDep, tenant_id: TenantQuery = None
) -> ApiKeyList:
    """The API keys of one tenant (`admin` without `tenant_id`: of every tenant), revoked
    ones included (`revoked_at`), with `expires_at` and who made them, without the secret:
    only its first characters (`prefix`) to recognise it. Needs the `admin` scope, or
    `tenant:admin` (its own tenant's)."""
    records = await services.api_keys.list()
    if tenant_id is not None or Scope.ADMIN not in principal.scopes:
        tenant = await managed_tenant(principal, tenant_id, services.tenants)
        records = [record for record in records if record.tenant == tenant]
    items = [ApiKeyInfo(**record.model_dump()) for record in records]
    return ApiKeyList(items=items, total=len(items))


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyInfo,
    responses=problems(401, 403, docs={404: API_KEY_NOT_FOUND}),
    summary="Revoke an API key (idempotent)",
)
async def revoke_key(key_id: str, principal: TenantAdminDep, services: ServicesDep) -> ApiKeyInfo:
    """Revokes the key at once: its next request gets 401 `api_key_invalid`. Revoking a
    revoked key answers the same record again (idempotent). Needs the `admin` scope, or
    `tenant:admin` for a key of its own tenant."""
    existing = await services.api_keys.get(key_id)
    if existing is None or not may_manage(principal, existing.tenant):
        raise NotFound("No API key with this id.")
    record = await revoke_api_key(
        store=services.api_keys, bus=services.principal_changes, key_id=key_id
    )
    if record is None:
        raise NotFound("No API key with this id.")
    return ApiKeyInfo(**record.model_dump())

"""Auth routes: password login for a JWT, who-am-I, API key management (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import AdminDep, PrincipalDep, ServicesDep, SettingsDep
from app.api.responses import (
    API_KEY_NOT_FOUND,
    LOGIN_UNAUTHORIZED,
    LOGIN_UNPROCESSABLE,
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
from app.core.errors import NotFound, Unauthorized, Unprocessable
from app.security.accounts import authenticate_user, create_api_key, principal_for_user
from app.security.passwords import MAX_PASSWORD_BYTES, PasswordTooLong
from app.security.tokens import issue_access_token

router = APIRouter(prefix="/auth", tags=["auth"])


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
) -> TokenResponse:
    """The OAuth2 password flow (form fields `username`, `password`, optional `scope`): a
    JWT to send as `Authorization: Bearer <token>` until `expires_in` seconds have passed.
    `scope` (space-separated) may ask for fewer scopes than the user holds, never more.

    Anyone may call it; it is rate limited more tightly than other routes (10 a minute per
    client by default, RATE_LIMIT_ROUTES). A wrong username and a wrong password get the
    same 401 `invalid_credentials`.
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
    issued = issue_access_token(settings=settings, subject=principal.id, scopes=scopes)
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=" ".join(sorted(scopes)),
    )


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
        id=principal.id, kind=principal.kind, name=principal.name, scopes=sorted(principal.scopes)
    )


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 422),
    summary="Create an API key (shown once)",
)
async def create_key(
    body: ApiKeyCreate, principal: AdminDep, services: ServicesDep, settings: SettingsDep
) -> ApiKeyCreated:
    """A new API key with the given scopes, for `X-API-Key`. The key itself is in this
    answer only: the service keeps just its hash. An API key is a principal of its own:
    sessions and tasks it creates belong to the key. Needs the `admin` scope; not
    idempotent (each call makes a new key)."""
    created = await create_api_key(
        store=services.api_keys,
        settings=settings,
        name=body.name,
        scopes=frozenset(body.scopes),
        created_by=principal.id,
    )
    return ApiKeyCreated(**created.record.model_dump(), key=created.plaintext)


@router.get(
    "/api-keys",
    response_model=ApiKeyList,
    responses=problems(401, 403),
    summary="List the API keys",
)
async def list_keys(_principal: AdminDep, services: ServicesDep) -> ApiKeyList:
    """Every API key, revoked ones included (`revoked_at`), without the secret: only its
    first characters (`prefix`) to recognise it. Needs the `admin` scope."""
    records = await services.api_keys.list()
    items = [ApiKeyInfo(**record.model_dump()) for record in records]
    return ApiKeyList(items=items, total=len(items))


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyInfo,
    responses=problems(401, 403, docs={404: API_KEY_NOT_FOUND}),
    summary="Revoke an API key (idempotent)",
)
async def revoke_key(key_id: str, _principal: AdminDep, services: ServicesDep) -> ApiKeyInfo:
    """Revokes the key at once: its next request gets 401 `api_key_invalid`. Revoking a
    revoked key answers the same record again (idempotent). Needs the `admin` scope."""
    record = await services.api_keys.revoke(key_id)
    if record is None:
        raise NotFound("No API key with this id.")
    return ApiKeyInfo(**record.model_dump())

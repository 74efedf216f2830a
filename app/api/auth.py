"""Auth routes: password login for a JWT, who-am-I, API key management (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import AdminDep, PrincipalDep, ServicesDep, SettingsDep
from app.api.responses import problems
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
    responses=problems(401, 422),
    summary="Exchange username and password for a bearer token",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    services: ServicesDep,
    settings: SettingsDep,
) -> TokenResponse:
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


@router.get("/me", response_model=PrincipalResponse, responses=problems(401))
async def me(principal: PrincipalDep) -> PrincipalResponse:
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
    created = await create_api_key(
        store=services.api_keys,
        settings=settings,
        name=body.name,
        scopes=frozenset(body.scopes),
        created_by=principal.id,
    )
    return ApiKeyCreated(**created.record.model_dump(), key=created.plaintext)


@router.get("/api-keys", response_model=ApiKeyList, responses=problems(401, 403))
async def list_keys(_principal: AdminDep, services: ServicesDep) -> ApiKeyList:
    records = await services.api_keys.list()
    items = [ApiKeyInfo(**record.model_dump()) for record in records]
    return ApiKeyList(items=items, total=len(items))


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyInfo,
    responses=problems(401, 403, 404),
    summary="Revoke an API key (idempotent)",
)
async def revoke_key(key_id: str, _principal: AdminDep, services: ServicesDep) -> ApiKeyInfo:
    record = await services.api_keys.revoke(key_id)
    if record is None:
        raise NotFound("No API key with this id.")
    return ApiKeyInfo(**record.model_dump())

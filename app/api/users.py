"""User management (admin): create, list, read, scopes, disable/enable, delete, password,
revoke every token. The rules live in app/security/users.py; the CLI uses the same service.

Every route acts in one tenant (app/api/tenant_scope.py): `admin` names it with `tenant_id`
(default: the default tenant), a `tenant:admin` acts in its own. A tenant's user is shown
and signs in as `<tenant>/<name>`; the path takes the name within the tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import ServicesDep, TenantAdminDep
from app.api.responses import ProblemDoc, problems
from app.api.schemas.auth import (
    PasswordSet,
    UserCreate,
    UserInfo,
    UserList,
    UserScopesUpdate,
)
from app.api.tenant_scope import TENANT_NOT_FOUND, managed_tenant
from app.core.errors import Conflict
from app.security.principals import TENANT_PATTERN, Principal, qualified, split_qualified
from app.security.scopes import Scope
from app.security.tenants import users_of
from app.services import AppServices
from app.store.records import UserRecord

router = APIRouter(prefix="/auth/users", tags=["users"])

USER_NOT_FOUND = ProblemDoc(
    "No user with this name (in the tenant acted in), or no such tenant.",
    (("user_not_found", "No user named 'bob'."), ("tenant_not_found", "No tenant 'acme'.")),
)
USER_EXISTS = ProblemDoc(
    "A user with this name exists.", (("user_exists", "A user named 'bob' exists."),)
)
SELF_LOCKOUT = ProblemDoc(
    "An admin cannot disable or delete the account it is signed in with.",
    (("self_lockout", "You cannot disable or delete your own account."),),
)
PASSWORD_UNPROCESSABLE = ProblemDoc(
    "The body failed validation, or the password breaks the policy: at least 12 characters, "
    "at most 72 bytes (bcrypt's limit), not the username.",
    (
        ("validation_error", "body.scopes: List should have at least 1 item after validation"),
        ("weak_password", "password must be at least 12 characters"),
        ("password_too_long", "password must be at most 72 bytes"),
    ),
)


TenantQuery = Annotated[
    str | None,
    Query(
        pattern=TENANT_PATTERN,
        description="The tenant acted in (admin only; a tenant:admin acts in its own).",
    ),
]


async def _user(
    principal: Principal, username: str, tenant_id: str | None, services: AppServices
) -> str:
    """The stored (qualified) name of ``username`` in the tenant this caller acts in."""
    tenant = await managed_tenant(principal, tenant_id, services.tenants)
    return qualified(tenant, username)


def _info(user: UserRecord) -> UserInfo:
    return UserInfo(
        username=user.username,
        tenant=split_qualified(user.username)[0],
        scopes=user.scopes,
        disabled=user.disabled,
        created_at=user.created_at,
        credentials_changed_at=user.credentials_changed_at,
    )


def _refuse_self(principal: Principal, username: str) -> None:
    """``username``: the stored (qualified) name."""
    if principal.id == Principal.for_user(username).id:
        raise Conflict(SELF_LOCKOUT.examples[0][1], code="self_lockout")


@router.post(
    "",
    response_model=UserInfo,
    status_code=status.HTTP_201_CREATED,
    responses=problems(
        401,
        403,
        docs={404: TENANT_NOT_FOUND, 409: USER_EXISTS, 422: PASSWORD_UNPROCESSABLE},
    ),
    summary="Create a user",
)
async def create_user(
    body: UserCreate, principal: TenantAdminDep, services: ServicesDep
) -> UserInfo:
    """A user who signs in with POST /v1/auth/token and holds `scopes`; in tenant
    `tenant_id` it signs in as `<tenant_id>/<username>` and cannot hold `admin`. Needs
    `admin`, or `tenant:admin` for its own tenant."""
    tenant = await managed_tenant(principal, body.tenant_id, services.tenants)
    user = await services.user_admin.create(
        body.username, password=body.password, scopes=body.scopes, tenant=tenant
    )
    return _info(user)


@router.get(
    "",
    response_model=UserList,
    responses=problems(401, 403, docs={404: TENANT_NOT_FOUND}),
    summary="List the users",
)
async def list_users(
    principal: TenantAdminDep, services: ServicesDep, tenant_id: TenantQuery = None
) -> UserList:
    """The users of one tenant (`admin` without `tenant_id`: of every tenant), disabled
    ones included, never a password hash. Needs `admin`, or `tenant:admin` (its own)."""
    users = await services.user_admin.list()
    if tenant_id is not None or Scope.ADMIN not in principal.scopes:
        tenant = await managed_tenant(principal, tenant_id, services.tenants)
        users = users_of(tenant, users)
    items = [_info(user) for user in users]
    return UserList(items=items, total=len(items))


@router.get(
    "/{username}",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Read a user",
)
async def get_user(
    username: str,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> UserInfo:
    """One user's scopes, state and when its credentials last changed. Needs `admin`, or
    `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    return _info(await services.user_admin.get(name))


@router.patch(
    "/{username}",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Set a user's scopes",
)
async def set_scopes(
    username: str,
    body: UserScopesUpdate,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> UserInfo:
    """Replaces the scopes. Tokens already issued keep only the scopes the user still
    holds, on every replica at once. Needs `admin`, or `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    return _info(await services.user_admin.set_scopes(name, body.scopes))


@router.post(
    "/{username}/disable",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND, 409: SELF_LOCKOUT}),
    summary="Disable a user (ends its tokens and API keys)",
)
async def disable_user(
    username: str,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> UserInfo:
    """The user can no longer sign in; its tokens get 401 `token_revoked` and the API keys
    it made 401 `api_key_revoked`, on every replica at once. Idempotent. Needs `admin`, or
    `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    _refuse_self(principal, name)
    return _info(await services.user_admin.disable(name))


@router.post(
    "/{username}/enable",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Enable a user again",
)
async def enable_user(
    username: str,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> UserInfo:
    """The user may sign in again and its API keys work again; tokens issued before the
    disable stay refused. Idempotent. Needs `admin`, or `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    return _info(await services.user_admin.enable(name))


@router.put(
    "/{username}/password",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND, 422: PASSWORD_UNPROCESSABLE}),
    summary="Set a user's password (ends its tokens)",
)
async def set_password(
    username: str,
    body: PasswordSet,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> UserInfo:
    """Replaces the password; every token issued before gets 401 `token_revoked`.
    Needs `admin`, or `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    return _info(await services.user_admin.set_password(name, body.password))


@router.post(
    "/{username}/revoke-tokens",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Revoke every token of a user",
)
async def revoke_tokens(
    username: str,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> UserInfo:
    """Every token issued to the user until now gets 401 `token_revoked`; the user may
    sign in again. API keys are not affected. Needs `admin`, or `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    return _info(await services.user_admin.revoke_tokens(name))


@router.delete(
    "/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND, 409: SELF_LOCKOUT}),
    summary="Delete a user (ends its tokens, revokes its API keys)",
)
async def delete_user(
    username: str,
    principal: TenantAdminDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> Response:
    """Removes the user; its tokens get 401 `token_revoked` and the API keys it made are
    revoked for good (a later user of the same name does not inherit them). Needs `admin`,
    or `tenant:admin` (its own tenant)."""
    name = await _user(principal, username, tenant_id, services)
    _refuse_self(principal, name)
    await services.user_admin.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""User management (admin): create, list, read, scopes, disable/enable, delete, password,
revoke every token. The rules live in app/security/users.py; the CLI uses the same service."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import AdminDep, ServicesDep
from app.api.responses import ProblemDoc, problems
from app.api.schemas.auth import (
    PasswordSet,
    UserCreate,
    UserInfo,
    UserList,
    UserScopesUpdate,
)
from app.core.errors import Conflict
from app.security.principals import Principal
from app.store.records import UserRecord

router = APIRouter(prefix="/auth/users", tags=["users"])

USER_NOT_FOUND = ProblemDoc(
    "No user with this name.", (("user_not_found", "No user named 'bob'."),)
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


def _info(user: UserRecord) -> UserInfo:
    return UserInfo(
        username=user.username,
        scopes=user.scopes,
        disabled=user.disabled,
        created_at=user.created_at,
        credentials_changed_at=user.credentials_changed_at,
    )


def _refuse_self(principal: Principal, username: str) -> None:
    if principal.id == Principal.for_user(username).id:
        raise Conflict(SELF_LOCKOUT.examples[0][1], code="self_lockout")


@router.post(
    "",
    response_model=UserInfo,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, docs={409: USER_EXISTS, 422: PASSWORD_UNPROCESSABLE}),
    summary="Create a user",
)
async def create_user(body: UserCreate, _principal: AdminDep, services: ServicesDep) -> UserInfo:
    """A user who signs in with POST /v1/auth/token and holds `scopes`. Needs `admin`."""
    user = await services.user_admin.create(
        body.username, password=body.password, scopes=body.scopes
    )
    return _info(user)


@router.get("", response_model=UserList, responses=problems(401, 403), summary="List the users")
async def list_users(_principal: AdminDep, services: ServicesDep) -> UserList:
    """Every user, disabled ones included, never a password hash. Needs `admin`."""
    items = [_info(user) for user in await services.user_admin.list()]
    return UserList(items=items, total=len(items))


@router.get(
    "/{username}",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Read a user",
)
async def get_user(username: str, _principal: AdminDep, services: ServicesDep) -> UserInfo:
    """One user's scopes, state and when its credentials last changed. Needs `admin`."""
    return _info(await services.user_admin.get(username))


@router.patch(
    "/{username}",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Set a user's scopes",
)
async def set_scopes(
    username: str, body: UserScopesUpdate, _principal: AdminDep, services: ServicesDep
) -> UserInfo:
    """Replaces the scopes. Tokens already issued keep only the scopes the user still
    holds, on every replica at once. Needs `admin`."""
    return _info(await services.user_admin.set_scopes(username, body.scopes))


@router.post(
    "/{username}/disable",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND, 409: SELF_LOCKOUT}),
    summary="Disable a user (ends its tokens and API keys)",
)
async def disable_user(username: str, principal: AdminDep, services: ServicesDep) -> UserInfo:
    """The user can no longer sign in; its tokens get 401 `token_revoked` and the API keys
    it made 401 `api_key_revoked`, on every replica at once. Idempotent. Needs `admin`."""
    _refuse_self(principal, username)
    return _info(await services.user_admin.disable(username))


@router.post(
    "/{username}/enable",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Enable a user again",
)
async def enable_user(username: str, _principal: AdminDep, services: ServicesDep) -> UserInfo:
    """The user may sign in again and its API keys work again; tokens issued before the
    disable stay refused. Idempotent. Needs `admin`."""
    return _info(await services.user_admin.enable(username))


@router.put(
    "/{username}/password",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND, 422: PASSWORD_UNPROCESSABLE}),
    summary="Set a user's password (ends its tokens)",
)
async def set_password(
    username: str, body: PasswordSet, _principal: AdminDep, services: ServicesDep
) -> UserInfo:
    """Replaces the password; every token issued before gets 401 `token_revoked`.
    Needs `admin`."""
    return _info(await services.user_admin.set_password(username, body.password))


@router.post(
    "/{username}/revoke-tokens",
    response_model=UserInfo,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND}),
    summary="Revoke every token of a user",
)
async def revoke_tokens(username: str, _principal: AdminDep, services: ServicesDep) -> UserInfo:
    """Every token issued to the user until now gets 401 `token_revoked`; the user may
    sign in again. API keys are not affected. Needs `admin`."""
    return _info(await services.user_admin.revoke_tokens(username))


@router.delete(
    "/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(401, 403, docs={404: USER_NOT_FOUND, 409: SELF_LOCKOUT}),
    summary="Delete a user (ends its tokens, revokes its API keys)",
)
async def delete_user(username: str, principal: AdminDep, services: ServicesDep) -> Response:
    """Removes the user; its tokens get 401 `token_revoked` and the API keys it made are
    revoked for good (a later user of the same name does not inherit them). Needs `admin`."""
    _refuse_self(principal, username)
    await services.user_admin.delete(username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

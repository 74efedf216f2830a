"""Tenants: create, list, read, update, delete (`admin`); a `tenant:admin` reads its own.

A tenant's principals carry it in their ids, so whatever they own is theirs alone; its
policy (rate limit, caps, budgets, allowed agents) applies to each of them within seconds on
every process. Users and API keys are made for a tenant with `tenant_id` on their routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import AdminDep, ServicesDep, TenantAdminDep
from app.api.responses import ProblemDoc, problems
from app.api.schemas.tenants import (
    TenantCreate,
    TenantInfo,
    TenantList,
    TenantPolicyBody,
    TenantUpdate,
)
from app.api.tenant_scope import may_read_tenant, tenant_not_found
from app.core.errors import Unprocessable
from app.services import AppServices

router = APIRouter(prefix="/tenants", tags=["tenants"])

TENANT_NOT_FOUND = ProblemDoc(
    "No tenant with this id (or not yours to see).",
    (("tenant_not_found", "No tenant 'acme'."),),
)
TENANT_EXISTS = ProblemDoc(
    "A tenant with this id exists, or existed (a deleted tenant's id is never used again).",
    (
        ("tenant_exists", "A tenant 'acme' exists."),
        ("tenant_id_retired", "The id 'acme' belonged to a deleted tenant: ..."),
    ),
)
TENANT_DEFAULT = ProblemDoc(
    "The default tenant always exists and follows the deployment's settings.",
    (("tenant_default", "The default tenant cannot be deleted."),),
)
TENANT_UNPROCESSABLE = ProblemDoc(
    "The body failed validation, or names an agent this deployment does not serve.",
    (
        ("validation_error", "body.id: String should match pattern ..."),
        ("unknown_agent", "No agent named 'nope' is served here."),
    ),
)


def _known_agents(services: AppServices, policy: TenantPolicyBody | None) -> None:
    if policy is None or policy.allowed_agents is None:
        return
    served = {agent.name for agent in services.agents.all()}
    unknown = sorted(set(policy.allowed_agents) - served)
    if unknown:
        raise Unprocessable(
            f"No agent named {', '.join(map(repr, unknown))} is served here.",
            code="unknown_agent",
        )


@router.post(
    "",
    response_model=TenantInfo,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, docs={409: TENANT_EXISTS, 422: TENANT_UNPROCESSABLE}),
    summary="Create a tenant",
)
async def create_tenant(body: TenantCreate, _admin: AdminDep, services: ServicesDep) -> TenantInfo:
    """A tenant with its policy. Then make its users (POST /v1/auth/users with
    `tenant_id`) or API keys (POST /v1/auth/api-keys with `tenant_id`). Needs `admin`."""
    _known_agents(services, body.policy)
    record = await services.tenant_admin.create(
        body.id, name=body.name, policy=body.policy.record()
    )
    return TenantInfo.of(record)


@router.get("", response_model=TenantList, responses=problems(401, 403), summary="List tenants")
async def list_tenants(_admin: AdminDep, services: ServicesDep) -> TenantList:
    """Every tenant but the default one (which has no record). Needs `admin`."""
    items = [TenantInfo.of(record) for record in await services.tenant_admin.list()]
    return TenantList(items=items, total=len(items))


@router.get(
    "/{tenant_id}",
    response_model=TenantInfo,
    responses=problems(401, 403, docs={404: TENANT_NOT_FOUND}),
    summary="Read a tenant",
)
async def get_tenant(
    tenant_id: str, principal: TenantAdminDep, services: ServicesDep
) -> TenantInfo:
    """One tenant and its policy. `admin` reads any; `tenant:admin` its own only."""
    if not may_read_tenant(principal, tenant_id):
        raise tenant_not_found(tenant_id)
    return TenantInfo.of(await services.tenant_admin.get(tenant_id))


@router.patch(
    "/{tenant_id}",
    response_model=TenantInfo,
    responses=problems(
        401, 403, docs={404: TENANT_NOT_FOUND, 409: TENANT_DEFAULT, 422: TENANT_UNPROCESSABLE}
    ),
    summary="Rename a tenant or replace its policy",
)
async def update_tenant(
    tenant_id: str, body: TenantUpdate, _admin: AdminDep, services: ServicesDep
) -> TenantInfo:
    """The new policy applies to the tenant's principals on every process at once (new
    runs and requests; runs in flight keep what they started with). Needs `admin`."""
    _known_agents(services, body.policy)
    record = await services.tenant_admin.update(
        tenant_id, name=body.name, policy=body.policy.record() if body.policy else None
    )
    return TenantInfo.of(record)


@router.delete(
    "/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(401, 403, docs={404: TENANT_NOT_FOUND, 409: TENANT_DEFAULT}),
    summary="Delete a tenant (its users and API keys with it)",
)
async def delete_tenant(tenant_id: str, _admin: AdminDep, services: ServicesDep) -> Response:
    """At once on every process: its users are deleted (their tokens 401 `token_revoked`),
    its API keys revoked (401 `api_key_invalid`), any other credential of it (an IdP's token)
    401 `tenant_unknown`; its queued tasks end without running. Its id is retired: never
    made again (409 `tenant_id_retired`), so nothing its principals owned can be reached.
    Needs `admin`."""
    await services.tenant_admin.delete(tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

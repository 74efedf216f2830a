"""Which tenant an administrative route acts in, and who may act there.

``admin`` (held only in the default tenant) acts in any tenant, named by ``tenant_id`` (the
default tenant when unset). ``tenant:admin`` acts only in its own tenant: naming another is
answered 404 (as if it did not exist), and a default-tenant principal holding it manages
nothing (the default tenant's users and keys need ``admin``: its users may hold ``admin``).
"""

from __future__ import annotations

from app.api.responses import ProblemDoc
from app.core.errors import Forbidden, NotFound
from app.security.principals import DEFAULT_TENANT, Principal
from app.security.scopes import Scope
from app.security.tenants import TenantDirectory

TENANT_NOT_FOUND = ProblemDoc(
    "No tenant with this id, or not the caller's own (a tenant:admin acts in its own only).",
    (("tenant_not_found", "No tenant 'acme'."),),
)


def tenant_not_found(tenant_id: str) -> NotFound:
    return NotFound(f"No tenant {tenant_id!r}.", code="tenant_not_found")


async def managed_tenant(
    principal: Principal, requested: str | None, tenants: TenantDirectory
) -> str:
    if Scope.ADMIN in principal.scopes:
        tenant = requested or DEFAULT_TENANT
        if await tenants.get(tenant) is None:
            raise tenant_not_found(tenant)
        return tenant
    if principal.tenant == DEFAULT_TENANT:
        raise Forbidden(
            "Managing the default tenant's users and keys needs the admin scope.",
            code="insufficient_scope",
        )
    if requested not in (None, principal.tenant):
        raise tenant_not_found(requested or "")
    return principal.tenant


def may_read_tenant(principal: Principal, tenant_id: str) -> bool:
    return Scope.ADMIN in principal.scopes or principal.tenant == tenant_id


def may_manage(principal: Principal, tenant_id: str) -> bool:
    """A thing of ``tenant_id`` (an API key): `admin`, or that tenant's `tenant:admin`."""
    if Scope.ADMIN in principal.scopes:
        return True
    return principal.tenant != DEFAULT_TENANT and principal.tenant == tenant_id

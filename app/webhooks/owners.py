"""Who a subscription belongs to: a principal (its id), or a whole tenant (``tenant:<id>``,
made by a ``tenant:admin`` and managed by any of its tenant admins). A tenant subscription
hears of the runs and tasks of every principal of that tenant; a principal's, of its own."""

from __future__ import annotations

from app.core.tenancy import TENANT_OWNER, tenant_of


def tenant_owner(tenant: str) -> str:
    return TENANT_OWNER + tenant


def is_tenant_owner(owner: str) -> bool:
    return owner.startswith(TENANT_OWNER)


def owners_hearing(run_owner: str) -> tuple[str, str]:
    """The subscription owners told of a run of ``run_owner``: itself and its tenant."""
    return run_owner, tenant_owner(tenant_of(run_owner))

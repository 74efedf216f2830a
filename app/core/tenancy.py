"""A principal id's tenant, for the layers below security (the LLM cache's partitions).

The id forms are app/security/principals.py's: ``user:<tenant>/<name>``,
``key:<tenant>/<id>``, ``oidc:<alias>@<tenant>:<subject>``; no tenant part = the default.
"""

from __future__ import annotations

DEFAULT_TENANT = "default"
# The owner id of what belongs to a whole tenant (its webhook subscriptions), beside the
# principal ids (no principal id starts so).
TENANT_OWNER = "tenant:"


def tenant_of(principal_id: str) -> str:
    kind, _, rest = principal_id.partition(":")
    if kind == "oidc":
        namespace = rest.partition(":")[0]
        _, at, tenant = namespace.partition("@")
        return tenant if at and tenant else DEFAULT_TENANT
    tenant, slash, _ = rest.partition("/")
    return tenant if slash and tenant else DEFAULT_TENANT

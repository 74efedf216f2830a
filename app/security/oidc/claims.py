"""From a verified token's claims to our scopes.

Scopes come from ``scope`` (space separated, RFC 9068) or ``scp`` (a list or a string: Entra,
Okta), keeping only our scope names (``openid``, ``profile`` and the like mean nothing here),
plus whatever the provider's ``role_scopes`` grants for the roles found at ``roles_claim``
(a dotted path: Keycloak's ``realm_access.roles``, Entra's ``roles``, an Auth0 namespaced claim).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.security.oidc.errors import invalid
from app.security.oidc.settings import OidcProvider
from app.security.principals import DEFAULT_TENANT, is_tenant_id
from app.security.scopes import Scope

_KNOWN = frozenset(scope.value for scope in Scope)


def _names(value: Any, *, split: bool = True) -> list[str]:
    if isinstance(value, str):
        return value.split() if split else [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None. A claim whose own name holds dots (Auth0's
    ``https://example.com/roles``) is matched whole first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def scopes_from_claims(claims: Mapping[str, Any], provider: OidcProvider) -> frozenset[str]:
    granted = {name for name in _names(claims.get("scope")) if name in _KNOWN}
    granted.update(name for name in _names(claims.get("scp")) if name in _KNOWN)
    if provider.roles_claim:
        for role in _names(claim_at(claims, provider.roles_claim), split=False):
            granted.update(provider.role_scopes.get(role, ()))
    return frozenset(granted)


def tenant_from_claims(claims: Mapping[str, Any], provider: OidcProvider) -> str:
    """The tenant named at ``tenant_claim``; the default tenant when none is configured or
    the token has none. A value that is not a tenant id makes the token invalid (OidcRefused)."""
    if not provider.tenant_claim:
        return DEFAULT_TENANT
    value = claim_at(claims, provider.tenant_claim)
    if value is None:
        return DEFAULT_TENANT
    if not isinstance(value, str) or not is_tenant_id(value):
        raise invalid("The access token's tenant claim does not name a tenant.")
    return value

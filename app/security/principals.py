"""Who is calling: a user (from a JWT), an API key, or an external identity (a token from a
configured OIDC issuer), each a principal of its own.

A principal id is what owns resources: ``user:<name>``, ``key:<key id>`` or
``oidc:<issuer alias>:<subject>`` (namespaced by issuer, so the same ``sub`` at two IdPs is two
principals). It is built by ``Principal.for_user`` / ``for_api_key`` / ``for_external`` and read
back by ``Principal.from_id``, nowhere else.

A principal of a tenant other than the default one carries its tenant in its id:
``user:<tenant>/<name>``, ``key:<tenant>/<key id>``, ``oidc:<alias>@<tenant>:<subject>``
(tenant ids hold none of ``/@:``). Every store keyed by owner therefore isolates tenants by
construction, and a worker reading a task's owner back knows its tenant. The default tenant's
ids are unchanged, so a one-team deployment changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from app.core.tenancy import DEFAULT_TENANT
from app.security.scopes import Scope

__all__ = [
    "DEFAULT_TENANT",
    "TENANT_PATTERN",
    "Principal",
    "is_tenant_id",
    "qualified",
    "split_qualified",
]

PrincipalKind = Literal["user", "api_key", "external", "anonymous"]

_USER = "user:"
_API_KEY = "key:"
_EXTERNAL = "oidc:"

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
_TENANT = re.compile(TENANT_PATTERN)


def is_tenant_id(candidate: str) -> bool:
    return _TENANT.match(candidate) is not None


def qualified(tenant: str, local: str) -> str:
    """``<tenant>/<local>``, or ``local`` alone in the default tenant."""
    return local if tenant == DEFAULT_TENANT else f"{tenant}/{local}"


def split_qualified(name: str) -> tuple[str, str]:
    """(tenant, local) of a qualified name; ValueError for a malformed tenant part."""
    tenant, slash, local = name.partition("/")
    if not slash:
        return DEFAULT_TENANT, name
    if not is_tenant_id(tenant) or tenant == DEFAULT_TENANT or not local:
        raise ValueError(f"not a qualified name: {name!r}")
    return tenant, local


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    kind: PrincipalKind
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    tenant: str = DEFAULT_TENANT

    @classmethod
    def for_user(cls, name: str, scopes: Iterable[str] = ()) -> Principal:
        """``name`` as stored and signed in with: ``<tenant>/<name>`` outside the default."""
        tenant, _ = split_qualified(name)
        return cls(
            id=_USER + name, kind="user", name=name, scopes=_within(tenant, scopes), tenant=tenant
        )

    @classmethod
    def for_api_key(
        cls,
        key_id: str,
        *,
        name: str,
        scopes: Iterable[str] = (),
        tenant: str = DEFAULT_TENANT,
    ) -> Principal:
        return cls(
            id=_API_KEY + qualified(tenant, key_id),
            kind="api_key",
            name=name,
            scopes=_within(tenant, scopes),
            tenant=tenant,
        )

    @classmethod
    def for_external(
        cls,
        issuer_alias: str,
        subject: str,
        scopes: Iterable[str] = (),
        tenant: str = DEFAULT_TENANT,
    ) -> Principal:
        """A subject of an external issuer; the alias holds no ':' or '@' so the id parses."""
        if not issuer_alias or ":" in issuer_alias or "@" in issuer_alias or not subject:
            raise ValueError(f"not an external identity: {issuer_alias!r}, {subject!r}")
        if not is_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        namespace = issuer_alias if tenant == DEFAULT_TENANT else f"{issuer_alias}@{tenant}"
        return cls(
            id=f"{_EXTERNAL}{namespace}:{subject}",
            kind="external",
            name=subject,
            scopes=_within(tenant, scopes),
            tenant=tenant,
        )

    @property
    def key_id(self) -> str:
        """An API key principal's key id (the store's), without its tenant."""
        return self.id.removeprefix(_API_KEY).rpartition("/")[2]

    @classmethod
    def from_id(cls, principal_id: str, scopes: Iterable[str] = ()) -> Principal:
        """The principal an owner id names (a worker runs a task as its owner).

        ValueError for anything that is not ``user:<name>``, ``key:<id>`` or
        ``oidc:<alias>:<subject>``."""
        if principal_id.startswith(_API_KEY) and len(principal_id) > len(_API_KEY):
            tenant, key_id = split_qualified(principal_id.removeprefix(_API_KEY))
            return cls.for_api_key(key_id, name=key_id, scopes=scopes, tenant=tenant)
        if principal_id.startswith(_USER) and len(principal_id) > len(_USER):
            return cls.for_user(principal_id.removeprefix(_USER), scopes)
        if principal_id.startswith(_EXTERNAL):
            namespace, _, subject = principal_id.removeprefix(_EXTERNAL).partition(":")
            alias, at, tenant = namespace.partition("@")
            if alias and subject and (not at or tenant != DEFAULT_TENANT):
                return cls.for_external(alias, subject, scopes, tenant or DEFAULT_TENANT)
        raise ValueError(f"not a principal id: {principal_id!r}")

    def has_scopes(self, required: Iterable[str]) -> bool:
        # admin implies every scope: an operator must be able to act on anything.
        return Scope.ADMIN in self.scopes or frozenset(required) <= self.scopes


def _within(tenant: str, scopes: Iterable[str]) -> frozenset[str]:
    """A tenant's principal never holds ``admin`` (it implies every tenant): whatever a
    record or a token says, it is dropped here, where every principal is made."""
    held = frozenset(scopes)
    if tenant != DEFAULT_TENANT and Scope.ADMIN in held:
        return held - {Scope.ADMIN}
    return held


# Used when AUTH_ENABLED=false (development only; production refuses that setting).
AUTH_DISABLED_PRINCIPAL = Principal(
    id=_USER + "anonymous", kind="anonymous", name="anonymous", scopes=frozenset(Scope)
)

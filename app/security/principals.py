"""Who is calling: a user (from a JWT), an API key, or an external identity (a token from a
configured OIDC issuer), each a principal of its own.

A principal id is what owns resources: ``user:<name>``, ``key:<key id>`` or
``oidc:<issuer alias>:<subject>`` (namespaced by issuer, so the same ``sub`` at two IdPs is two
principals). It is built by ``Principal.for_user`` / ``for_api_key`` / ``for_external`` and read
back by ``Principal.from_id``, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from app.security.scopes import Scope

PrincipalKind = Literal["user", "api_key", "external", "anonymous"]

_USER = "user:"
_API_KEY = "key:"
_EXTERNAL = "oidc:"


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    kind: PrincipalKind
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_user(cls, name: str, scopes: Iterable[str] = ()) -> Principal:
        return cls(id=_USER + name, kind="user", name=name, scopes=frozenset(scopes))

    @classmethod
    def for_api_key(cls, key_id: str, *, name: str, scopes: Iterable[str] = ()) -> Principal:
        return cls(id=_API_KEY + key_id, kind="api_key", name=name, scopes=frozenset(scopes))

    @classmethod
    def for_external(cls, issuer_alias: str, subject: str, scopes: Iterable[str] = ()) -> Principal:
        """A subject of an external issuer; the alias holds no ':' so the id parses back."""
        if not issuer_alias or ":" in issuer_alias or not subject:
            raise ValueError(f"not an external identity: {issuer_alias!r}, {subject!r}")
        principal_id = f"{_EXTERNAL}{issuer_alias}:{subject}"
        return cls(id=principal_id, kind="external", name=subject, scopes=frozenset(scopes))

    @classmethod
    def from_id(cls, principal_id: str, scopes: Iterable[str] = ()) -> Principal:
        """The principal an owner id names (a worker runs a task as its owner).

        ValueError for anything that is not ``user:<name>``, ``key:<id>`` or
        ``oidc:<alias>:<subject>``."""
        if principal_id.startswith(_API_KEY) and len(principal_id) > len(_API_KEY):
            key_id = principal_id.removeprefix(_API_KEY)
            return cls.for_api_key(key_id, name=key_id, scopes=scopes)
        if principal_id.startswith(_USER) and len(principal_id) > len(_USER):
            return cls.for_user(principal_id.removeprefix(_USER), scopes)
        if principal_id.startswith(_EXTERNAL):
            alias, _, subject = principal_id.removeprefix(_EXTERNAL).partition(":")
            if alias and subject:
                return cls.for_external(alias, subject, scopes)
        raise ValueError(f"not a principal id: {principal_id!r}")

    def has_scopes(self, required: Iterable[str]) -> bool:
        # admin implies every scope: an operator must be able to act on anything.
        return Scope.ADMIN in self.scopes or frozenset(required) <= self.scopes


# Used when AUTH_ENABLED=false (development only; production refuses that setting).
AUTH_DISABLED_PRINCIPAL = Principal(
    id=_USER + "anonymous", kind="anonymous", name="anonymous", scopes=frozenset(Scope)
)

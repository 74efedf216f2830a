"""Who is calling: a user (from a JWT) or an API key, each a principal of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ALL_SCOPES: tuple[str, ...] = (
    "agents:run",
    "sessions:read",
    "sessions:write",
    "tasks:read",
    "tasks:write",
    "admin",
)
ADMIN_SCOPE = "admin"

PrincipalKind = Literal["user", "api_key", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """``id`` is what owns resources: ``user:<name>`` or ``key:<key id>``."""

    id: str
    kind: PrincipalKind
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has_scopes(self, required: frozenset[str] | set[str]) -> bool:
        # admin implies every scope: an operator must be able to act on anything.
        return ADMIN_SCOPE in self.scopes or required <= self.scopes


# Used when AUTH_ENABLED=false (development only; production refuses that setting).
AUTH_DISABLED_PRINCIPAL = Principal(
    id="user:anonymous", kind="anonymous", name="anonymous", scopes=frozenset(ALL_SCOPES)
)


def validate_scopes(scopes: list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}; valid: {', '.join(ALL_SCOPES)}")
    return frozenset(scopes)

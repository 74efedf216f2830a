"""The one list of scopes: names, what each allows, and the rule that ``admin`` implies all."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    AGENTS_RUN = "agents:run"
    SESSIONS_READ = "sessions:read"
    SESSIONS_WRITE = "sessions:write"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    WEBHOOKS = "webhooks"
    TENANT_ADMIN = "tenant:admin"
    ADMIN = "admin"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Scope.AGENTS_RUN: "Run agents (invoke, stream, WebSocket) and reach their live runs.",
    Scope.SESSIONS_READ: "Read own sessions.",
    Scope.SESSIONS_WRITE: "Create and delete own sessions.",
    Scope.TASKS_READ: "Read own background tasks.",
    Scope.TASKS_WRITE: "Submit and control own background tasks.",
    Scope.WEBHOOKS: "Manage own webhook subscriptions and read their deliveries.",
    Scope.TENANT_ADMIN: "Manage own tenant's users and API keys; read own tenant and its usage.",
    Scope.ADMIN: "Manage tenants, users and API keys; implies every other scope.",
}


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Known scope names as a set; ValueError naming the unknown ones and the valid ones."""
    names = list(names)
    valid = {scope.value for scope in Scope}
    unknown = sorted(set(names) - valid)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}; valid: {', '.join(Scope)}")
    return frozenset(Scope(name) for name in names)

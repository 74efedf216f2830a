"""Route templates for metric labels, log lines and rate-limit buckets, never raw paths.

Since FastAPI 0.137, ``include_router`` no longer copies routes into the app: the matched
route in ``scope["route"]`` carries its path *without* the include prefix (``/auth/token``
for ``/v1/auth/token``), and the prefixed table is private. So the app keeps its own flat
table of full templates, filled where routers are included (app/api/router.py), and the
middleware matches against it with Starlette's public ``compile_path``. That also works
before routing (rate limit) and for answers given before routing (401, 413, 429).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.routing import BaseRoute, compile_path
from starlette.types import Scope

from app.core.problems import ErrorDialect

AuthChallenge = Callable[[Scope], str]  # the WWW-Authenticate value of a 401 on one path

_CACHE_KEY = "agent_service.route_template"

# The one label for every path no route matches: a URL scanner must not mint new series.
UNMATCHED_ROUTE = "__unmatched__"

# Probe and scrape paths: no credentials needed, never rate limited, not access-logged
# (they would drown the interesting lines).
OPS_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})


@dataclass(frozen=True, slots=True)
class _Entry:
    regex: re.Pattern[str]
    methods: frozenset[str] | None  # None: a WebSocket route
    template: str


class RouteTable:
    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._dialects: list[tuple[str, ErrorDialect]] = []
        self._challenges: dict[str, AuthChallenge] = {}

    def add_error_dialect(self, prefix: str, dialect: ErrorDialect) -> None:
        """Errors on paths under ``prefix`` leave in ``dialect``'s shape (app/core/problems.py)."""
        self._dialects.append((prefix, dialect))

    def add_auth_challenge(self, path: str, challenge: AuthChallenge) -> None:
        """A 401 on ``path`` says how to authenticate with this WWW-Authenticate value (MCP's
        names its protected-resource metadata) instead of the plain Bearer challenge."""
        self._challenges[path] = challenge

    def auth_challenge_for(self, path: str) -> AuthChallenge | None:
        return self._challenges.get(path)

    def error_dialect_for(self, path: str) -> ErrorDialect | None:
        for prefix, dialect in self._dialects:
            if path.startswith(prefix):
                return dialect
        return None

    def add(self, template: str, methods: set[str] | frozenset[str] | None) -> None:
        regex, _, _ = compile_path(template)
        self._entries.append(_Entry(regex, frozenset(methods) if methods else None, template))

    def add_routes(self, routes: list[BaseRoute], *, prefix: str = "") -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):  # included sub-routers have none: add them directly
                self.add(prefix + path, getattr(route, "methods", None))

    def add_router(self, router: APIRouter, *, prefix: str = "") -> None:
        self.add_routes(router.routes, prefix=prefix)

    def match(self, *, scope_type: str, method: str, path: str) -> str:
        partial: str | None = None
        for entry in self._entries:
            if (entry.methods is None) != (scope_type == "websocket"):
                continue
            if entry.regex.match(path) is None:
                continue
            if entry.methods is None or method in entry.methods:
                return entry.template
            partial = partial or entry.template  # path matched, method did not (405)
        return partial or UNMATCHED_ROUTE

    def allowed_methods(self, path: str) -> list[str]:
        """Every HTTP method some route serves at ``path`` (Starlette names only the first
        matching route's methods in a 405's Allow header)."""
        methods: set[str] = set()
        for entry in self._entries:
            if entry.methods is not None and entry.regex.match(path) is not None:
                methods |= entry.methods
        return sorted(methods)

    def template_for(self, scope: Scope) -> str:
        """The template of the route this request matches (memoised on the scope, so every
        middleware that asks pays for one match)."""
        cached = scope.get(_CACHE_KEY)
        if cached is not None:
            return str(cached)
        template = self.match(
            scope_type=scope["type"], method=scope.get("method", ""), path=scope["path"]
        )
        scope[_CACHE_KEY] = template
        return template

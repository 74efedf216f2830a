"""Every operation of the OpenAPI document is reachable from the TypeScript client, or is
listed in clients/typescript/coverage.json as not covered, with the reason. (The node side,
clients/typescript/test/e2e.test.mjs "coverage", checks each named method exists.)"""

from __future__ import annotations

import json
from typing import Any

from app.main import create_app
from tests.support.server_process import ROOT

MANIFEST = ROOT / "clients" / "typescript" / "coverage.json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations() -> set[str]:
    document: dict[str, Any] = create_app().openapi()
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def _routes() -> dict[str, str]:
    routes: dict[str, str] = json.loads(MANIFEST.read_text())["routes"]
    return routes


def test_every_operation_is_in_the_manifest() -> None:
    missing = sorted(_operations() - set(_routes()))
    assert not missing, f"add these to clients/typescript/coverage.json: {missing}"


def test_the_manifest_names_only_real_operations() -> None:
    stale = sorted(set(_routes()) - _operations())
    assert not stale, f"no longer in the OpenAPI document: {stale}"


def test_each_entry_is_a_method_name_or_a_reason() -> None:
    for route, target in _routes().items():
        if target.startswith("not covered"):
            assert len(target) > len("not covered: ") + 5, f"{route}: say why it is not covered"
        else:
            assert target.isidentifier(), f"{route}: {target!r} is not a method name"


def test_the_native_routes_are_covered() -> None:
    """Only protocol surfaces (and one alias) may be left to their own clients."""
    uncovered = {r for r, t in _routes().items() if t.startswith("not covered")}
    native = {
        r
        for r in uncovered
        if r.split(" ", 1)[1].startswith(
            ("/v1/agents", "/v1/runs", "/v1/tasks", "/v1/sessions", "/v1/auth")
        )
        and "/ag-ui" not in r
    }
    assert native == set()

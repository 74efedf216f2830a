"""Layering rule: only app/api, middleware and the server glue see FastAPI or Starlette.

agents/, llm/, store/, tasks/ and security/ never see a Request, so they stay usable from a
worker, a CLI or a test without an HTTP stack.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
FRAMEWORK_FREE = ("agents", "llm", "store", "tasks", "security")
FORBIDDEN = ("fastapi", "starlette")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_inner_layers_do_not_import_the_web_framework():
    offenders = []
    for package in FRAMEWORK_FREE:
        for path in (APP / package).rglob("*.py"):
            for name in _imports(path):
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(APP)} imports {name}")
    assert not offenders, offenders


def test_no_module_grows_past_400_lines():
    long = [
        f"{p.relative_to(APP)}: {n}"
        for p in APP.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, long


def test_no_base_http_middleware_or_blocking_calls():
    text = "\n".join(p.read_text() for p in APP.rglob("*.py"))
    for banned in ("BaseHTTPMiddleware", "time.sleep(", "import requests", "@app.middleware"):
        assert banned not in text, banned

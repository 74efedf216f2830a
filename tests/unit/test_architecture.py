"""Architecture rules, checked on the source (the way Polar lints its own layering).

- Only app/api, middleware, core and the entry points see FastAPI or Starlette: agents/, llm/,
  store/, tasks/ and security/ never see a Request, so they work from a worker, a CLI or a
  test without an HTTP stack.
- The package graph reads in request order and has no cycles.
- Application state is read in one place: app/api/deps.py.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
FRAMEWORK_FREE = ("agents", "llm", "store", "tasks", "security", "observability", "webhooks")
FORBIDDEN = ("fastapi", "starlette")

# Who may import whom (package -> packages it may use). A layer uses only layers below it.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "observability": {"core"},
    "security": {"core", "observability", "store"},
    "store": {"core", "observability", "llm"},
    "llm": {"core", "observability"},
    "agents": {"core", "observability", "llm", "store", "security"},
    "tasks": {"core", "observability", "llm", "store", "security", "agents"},
    "webhooks": {"core", "observability", "llm", "store", "tasks"},
    "middleware": {"core", "observability", "security", "store"},
    "services": {
        "core",
        "observability",
        "llm",
        "store",
        "security",
        "agents",
        "tasks",
        "webhooks",
    },
    "api": {
        "core",
        "observability",
        "llm",
        "store",
        "security",
        "agents",
        "tasks",
        "webhooks",
        "services",
    },
    "protocols": {
        "core",
        "observability",
        "llm",
        "store",
        "security",
        "agents",
        "tasks",
        "services",
        "api",
    },
    "sdk": {"core", "agents", "llm"},
    "main": {"core", "observability", "middleware", "api", "services", "protocols"},
    # The outermost layer: the CLI validates a tenant's policy with the API's own schema and
    # the deployment's agents, as the /v1/tenants routes do.
    "entrypoints": {
        "core",
        "observability",
        "security",
        "store",
        "agents",
        "api",
        "services",
        "main",
    },
}


def _package(path: Path) -> str:
    relative = path.relative_to(APP)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in APP.rglob("*.py") if p.name != "__init__.py" or p.parent != APP)


def package_graph() -> dict[str, dict[str, int]]:
    """package -> {imported package: number of import statements}."""
    graph: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for path in _modules():
        source = _package(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "app" or len(parts) < 2:
                continue
            target = parts[1]
            if target != source:
                graph[source][target] += 1
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in graph.get(node, {}):
            if state.get(target) == 1:
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycle_between_packages() -> None:
    assert _cycles(package_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == [["a", "b", "c", "a"]]


def test_every_package_imports_only_the_layers_below_it() -> None:
    graph = package_graph()
    unknown = sorted(set(graph) - set(ALLOWED))
    assert not unknown, f"new top-level package(s) {unknown}: add them to ALLOWED"
    offenders = [
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if target not in ALLOWED[source]
    ]
    assert not offenders, offenders


def test_inner_layers_do_not_import_the_web_framework() -> None:
    offenders = []
    for package in FRAMEWORK_FREE:
        for path in (APP / package).rglob("*.py"):
            for name in _imports(path):
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(APP)} imports {name}")
    assert not offenders, offenders


def _reads_app_state(tree: ast.AST) -> list[int]:
    """Lines that read ``<x>.app.state``, ``<x>.state.<y>`` on a request, or ``scope["app"]``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            # request.app.state / websocket.app.state / request.state / connection.state
            if isinstance(owner, ast.Attribute) and owner.attr == "app":
                lines.append(node.lineno)
            elif isinstance(owner, ast.Name) and owner.id in {
                "request",
                "websocket",
                "connection",
                "app",
            }:
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and node.slice.value in ("app", "state")
            and isinstance(node.value, ast.Name)
            and node.value.id == "scope"
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_deps_reads_application_state() -> None:
    allowed = {APP / "api" / "deps.py"}
    offenders = [
        f"{path.relative_to(APP)}:{line}"
        for path in _modules()
        if path not in allowed
        for line in _reads_app_state(ast.parse(path.read_text()))
    ]
    assert not offenders, offenders


def test_the_state_check_sees_each_way_of_reading_state() -> None:
    source = (
        "a = request.app.state.services\n"
        "b = websocket.state.services\n"
        "c = scope['app']\n"
        "d = request.state\n"
    )
    assert _reads_app_state(ast.parse(source)) == [1, 2, 3, 4]


def test_no_module_grows_past_400_lines() -> None:
    long = [
        f"{p.relative_to(APP)}: {n}"
        for p in APP.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, long


def test_no_base_http_middleware_or_blocking_calls() -> None:
    text = "\n".join(p.read_text() for p in APP.rglob("*.py"))
    for banned in ("BaseHTTPMiddleware", "time.sleep(", "import requests", "@app.middleware"):
        assert banned not in text, banned

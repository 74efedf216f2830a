"""docker/Dockerfile and .dockerignore, read as text (no Docker daemon needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.deploy.support import CHART_DIR, DOCKER_DIR, ROOT, SETTINGS_FIELDS

DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GUNICORN_CMD = ["gunicorn", "-c", "docker/gunicorn.conf.py", "app.entrypoints.asgi:app"]
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cc)\b")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions with line continuations joined and comments dropped, split by FROM."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        logical.append((current + line).strip())
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for key, value in re.findall(r'([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)', args):
            env[key] = value.strip('"')
    return env


def test_parser_sees_what_docker_sees() -> None:
    stages = parse(
        'FROM a AS one\n# c\nRUN x \\\n  # inner comment\n  && y\nFROM b\nUSER 1\nCMD ["z"]\n'
    )
    assert [(s.base, s.name) for s in stages] == [("a", "one"), ("b", None)]
    assert stages[0].all("RUN") == ["x && y"]
    assert stages[1].all("CMD") == ['["z"]']


def test_multi_stage_build_from_python_311_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))
    for stage in stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage.base)
        assert base == "python:3.11-slim"
    builder_runs = " ".join(stages[0].all("RUN"))
    assert re.search(r"pip install (--[a-z-]+ )*\.(\s|$)", builder_runs)


def pip_installs(stage: Stage) -> list[list[str]]:
    """The words of every `pip install` command in the stage's RUN instructions."""
    commands = [c.split() for run in stage.all("RUN") for c in re.split(r"&&|;", run)]
    return [c for c in commands if re.search(r"\bpip install\b", " ".join(c))]


def test_builder_installs_the_dependencies_from_the_hashed_runtime_lock(
    stages: list[Stage],
) -> None:
    builder = stages[0]
    installs = pip_installs(builder)
    locked = {c[c.index("-r") + 1] for c in installs if "--require-hashes" in c and "-r" in c}
    assert "requirements/runtime.txt" in locked  # the production lock, every file hash-checked
    assert "requirements/build.txt" in locked  # pip and setuptools too
    assert not any("dev" in word for c in installs for word in c)  # no test tools in the image
    # Every other install is the project itself, without dependencies: nothing is resolved
    # from pyproject.toml's ranges, nor built with an unpinned setuptools, at build time.
    for command in installs:
        if "--require-hashes" not in command:
            assert {"--no-deps", "--no-build-isolation"} <= set(command), command
    # The locks are copied (relative to WORKDIR) before the sources, so a code change keeps
    # the dependency layer cached.
    copies = [c.split() for c in builder.all("COPY")]
    lock_copy = next(i for i, c in enumerate(copies) if "requirements/runtime.txt" in c)
    assert copies[lock_copy][-1].strip("./") == "requirements"
    assert lock_copy < next(i for i, c in enumerate(copies) if c[0] == "app")
    assert (ROOT / "requirements/runtime.txt").is_file()


def test_final_stage_copies_the_venv_and_no_compilers(final: Stage) -> None:
    copies = final.all("COPY")
    assert any(c.startswith("--from=builder") and "/opt/venv" in c for c in copies)
    runs = " ".join(final.all("RUN"))
    assert not COMPILERS.search(runs), runs
    assert "apt-get install" not in runs
    assert "pip install" not in runs


def test_final_stage_runs_as_a_fixed_non_root_uid(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert int(uid) == 10001
    # The chart's pod securityContext uses the same uid.
    chart_values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert chart_values["podSecurityContext"]["runAsUser"] == int(uid)
    # USER comes after every RUN: nothing runs as root once it is set.
    keywords = [i.keyword for i in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_runtime_environment(final: Stage) -> None:
    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    assert env["HOST"] == "0.0.0.0"  # noqa: S104 (the container listens on all interfaces)
    assert env["HOME"] == "/tmp"  # gunicorn 27's control socket under a read-only root
    assert "/opt/venv/bin" in env["PATH"]
    # Whatever the image sets for the app is a real setting.
    app_env = {k for k in env if k not in {"PATH", "HOME"} and not k.startswith("PYTHON")}
    assert app_env <= SETTINGS_FIELDS, app_env - SETTINGS_FIELDS
    assert final.all("EXPOSE") == ["8000"]


def test_cmd_is_exec_form_gunicorn_with_the_repo_config(final: Stage) -> None:
    cmds = final.all("CMD")
    assert cmds, "no CMD"
    assert json.loads(cmds[-1]) == GUNICORN_CMD  # exec form: JSON array, gunicorn is PID 1
    # No ENTRYPOINT, or the worker's `agent-service worker` command could not replace it.
    assert final.all("ENTRYPOINT") == []
    # The relative config path resolves from WORKDIR, where the config is copied.
    assert final.all("WORKDIR")[-1] == "/app"
    assert any(c.split()[-1] == "/app/docker/gunicorn.conf.py" for c in final.all("COPY"))
    assert (ROOT / "docker/gunicorn.conf.py").is_file()


def test_no_secrets_are_copied(stages: list[Stage]) -> None:
    for stage in stages:
        for args in stage.all("COPY") + stage.all("ADD"):
            sources = [a for a in args.split()[:-1] if not a.startswith("--")]
            for source in sources:
                assert not re.search(r"(^|/)\.env|secret|\.pem$|\.key$|id_rsa", source), source
            assert not args.split()[0].startswith(("http://", "https://"))
    text = DOCKERFILE.read_text()
    assert not re.search(r"^(ARG|ENV)\s+\S*(SECRET_KEY|PASSWORD|API_KEY)\S*=", text, re.M)


def test_healthcheck_uses_python_stdlib_on_health_live(final: Stage) -> None:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert "/health/live" in check
    assert "curl" not in check and "wget" not in check
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(self.status if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_passes_and_fails(
    final: Stage,
    health_server: ThreadingHTTPServer,
    status: int,
    healthy: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_Health, "status", status)
    check = final.all("HEALTHCHECK")[0]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    env = {**os.environ, "PORT": str(health_server.server_address[1])}
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=10, check=False
    )
    assert (result.returncode == 0) is healthy, result.stderr


# --- .dockerignore -------------------------------------------------------------------------------


def ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_is_an_allow_list_that_keeps_secrets_out() -> None:
    patterns = ignore_patterns()
    assert patterns[0] == "*"  # everything out, then the build's inputs back in
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "requirements/build.txt",
        "requirements/runtime.txt",
        "README.md",
        "app",
        "clients/python",  # the CLI's run/chat/tasks verbs use our client
        "docker/gunicorn.conf.py",
    }
    never = (".env", ".venv", ".git", "tests", "bench/results", ".pytest_cache", "requirements")
    for path in (*never, "requirements/dev.txt"):
        assert path not in allowed
    assert "**/.env" in patterns and "**/__pycache__" in patterns
    # Everything the Dockerfile copies from the context is allowed back in.
    for stage in parse(DOCKERFILE.read_text()):
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            for source in args.split()[:-1]:
                source = source.rstrip("*")
                assert any(
                    source.rstrip("/") == a or source.startswith(a + "/") for a in allowed
                ), source

"""The TypeScript client (clients/typescript) against a real server process: ``npm ci`` from
its lock file, ``npm run build`` (tsc + the esbuild bundle), then its node tests
(test/e2e.test.mjs), one scenario per pytest test, with the base URL and credentials in
the environment. Also keeps the committed artefacts honest: the playground's copy of the
bundle and the generated OpenAPI types must equal a fresh build. Without node or npm the
tests fail, they do not skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, login
from tests.support import npm
from tests.support.server_process import ROOT, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ts-client")]

PACKAGE = ROOT / "clients" / "typescript"
BUNDLE = PACKAGE / "dist" / "agent-service-client.js"
SERVED = ROOT / "app" / "static" / "agent-service-client.js"


@pytest.fixture(scope="module")
def built() -> Path:
    npm.tool("node")
    npm.installed(PACKAGE)
    sources = [PACKAGE / name for name in ("src", "scripts", "package.json", "tsconfig.json")]
    npm.built(PACKAGE, "build", output=BUNDLE, sources=sources)
    return BUNDLE


@pytest.fixture(scope="module")
def server(built: Path) -> Iterator[ServerProcess]:
    # 40 tokens/s: an answer takes long enough to cut or abort in the middle of it.
    with ServerProcess(env={"OFFLINE_TOKENS_PER_SECOND": "40"}) as process:
        yield process


@pytest.fixture(scope="module")
def token(server: ServerProcess) -> str:
    return login(server.url)  # once: the login route is rate-limited


SCENARIOS = {
    "login": "password login, an API key, a wrong password, logout",
    "invoke": "invoke answers with the run's output",
    "stream": "a streamed answer as typed events, in order",
    "sessions": "a session remembers, is listed, deleted",
    "resume": "a stream cut mid-frame resumes with Last-Event-ID, nothing lost or repeated",
    "task": "a task submitted twice with one Idempotency-Key, followed to its result",
    "input": "the approval agent's questions answered, on a run and on a task",
    "abort": "an AbortSignal closes the stream and the server cancels the run",
    "cancel": "cancelRun and controlTask(stop) end the streams with `cancelled`",
    "errors": "refusals are ApiError with the problem's fields",
    "coverage": "every method named in coverage.json exists on the client",
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_ts_client(name: str, server: ServerProcess, token: str) -> None:
    env = {
        **os.environ,
        "AGENT_SERVICE_URL": server.url,
        "AGENT_SERVICE_USERNAME": "admin",
        "AGENT_SERVICE_PASSWORD": ADMIN_PASSWORD,
        "AGENT_SERVICE_TOKEN": token,
    }
    with npm.locked(PACKAGE, shared=True):  # no other worker rebuilds the bundle meanwhile
        done = subprocess.run(  # noqa: S603 - a fixed command
            [npm.tool("node"), "--test", f"--test-name-pattern=^{name}$", "test/e2e.test.mjs"],
            cwd=PACKAGE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    report = f"{SCENARIOS[name]}:\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    assert "# pass 1" in done.stdout and "# fail 0" in done.stdout, report


def test_the_stream_machinery(built: Path) -> None:
    """Parsing and the reconnect rules on synthesised responses (test/stream.test.mjs)."""
    with npm.locked(PACKAGE, shared=True):
        done = subprocess.run(  # noqa: S603 - a fixed command
            [npm.tool("node"), "--test", "test/stream.test.mjs"],
            cwd=PACKAGE,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "# pass 6" in done.stdout and "# fail 0" in done.stdout, done.stdout


def test_the_playground_serves_the_fresh_bundle(built: Path) -> None:
    """app/static/agent-service-client.js is committed (`make run` needs no node): it must be
    byte for byte what the client's sources build to, or the browser and the SDK drift."""
    with npm.locked(PACKAGE, shared=True):
        fresh = built.read_bytes()
    assert SERVED.read_bytes() == fresh, (
        "app/static/agent-service-client.js is stale: cd clients/typescript && "
        "npm run build:playground"
    )


def test_the_generated_types_match_the_server(built: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "openapi.ts"
    done = subprocess.run(  # noqa: S603 - a fixed command
        [npm.tool("node"), "scripts/generate.mjs", str(fresh)],
        cwd=PACKAGE,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    committed = PACKAGE / "src" / "generated" / "openapi.ts"
    assert fresh.read_text() == committed.read_text(), (
        "src/generated/openapi.ts is stale: cd clients/typescript && npm run openapi"
    )


def test_node_modules_are_never_committed() -> None:
    assert "clients/typescript/node_modules/" in (ROOT / ".gitignore").read_text().splitlines()
    assert (PACKAGE / "package-lock.json").exists()


def test_the_playground_page_loads_the_client(server: ServerProcess) -> None:
    """The page's module imports the bundle, which is served as a script under the page CSP."""
    served = httpx.get(f"{server.url}/static/agent-service-client.js", timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    assert "script-src 'self'" in served.headers["content-security-policy"]
    assert served.content == SERVED.read_bytes()
    page_script = httpx.get(f"{server.url}/static/playground.js", timeout=10).text
    assert 'from "/static/agent-service-client.js"' in page_script
    assert 'type="module"' in httpx.get(f"{server.url}/", timeout=10).text

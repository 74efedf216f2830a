"""The Makefile installs from the hashed lock: runtime only for `run`, dev for the rest.

`make -n` prints what a target would run without running it, so these need no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import ROOT

RUNTIME_INSTALL = "--require-hashes -r requirements/runtime.txt"
DEV_INSTALL = "--require-hashes -r requirements/dev.txt"


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dry_run(target: str, venv: Path) -> str:
    """The commands `make target` would run on a machine with no venv yet."""
    result = make("-n", target, f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def variable(name: str, cwd: Path = ROOT) -> str:
    result = make("-s", "--eval", "print-%: ; @echo $($*)", f"print-{name}", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def pip_installs(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if re.search(r"\bpip install\b", line)]


def test_run_installs_the_runtime_lock_only(tmp_path: Path) -> None:
    commands = dry_run("run", tmp_path / "venv")
    assert RUNTIME_INSTALL in commands
    assert "--require-hashes -r requirements/build.txt" in commands
    # No dev tools (pytest, mypy, playwright, ...) for a newcomer who only wants the service.
    assert "requirements/dev.txt" not in commands
    assert "[dev]" not in commands
    assert commands.splitlines()[-1] == f"{tmp_path / 'venv'}/bin/agent-service serve"


@pytest.mark.parametrize("target", ["test", "lint", "bench"])
def test_dev_targets_install_the_dev_lock(tmp_path: Path, target: str) -> None:
    commands = dry_run(target, tmp_path / "venv")
    assert RUNTIME_INSTALL in commands
    assert DEV_INSTALL in commands


@pytest.mark.parametrize("target", ["run", "test"])
def test_every_install_is_hash_checked_or_the_project_alone(tmp_path: Path, target: str) -> None:
    installs = pip_installs(dry_run(target, tmp_path / "venv"))
    assert installs
    for command in installs:
        words = command.split()
        if "--require-hashes" not in words:
            # The project is not in the lock: no dependencies, the locked setuptools builds it.
            assert {"--no-deps", "--no-build-isolation", "-e", "."} <= set(words), command


def test_lock_is_one_command_with_a_pinned_tool(tmp_path: Path) -> None:
    commands = dry_run("lock", tmp_path / "venv")
    version = variable("UV_VERSION")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert f"pip install --quiet uv=={version}" in commands
    compiles = [line for line in commands.splitlines() if "uv pip compile" in line]
    outputs = {line.split(" -o ")[-1].split()[0] for line in compiles}
    assert outputs == {"requirements/build.txt", "requirements/runtime.txt", "requirements/dev.txt"}
    for line in compiles:
        assert "--generate-hashes" in line and '--custom-compile-command "make lock"' in line


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The Makefile and its inputs, with a venv whose runtime install looks done."""
    for name in ("Makefile", "pyproject.toml", "requirements", "clients/python/pyproject.toml"):
        source = ROOT / name
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").symlink_to(sys.executable)
    (tmp_path / variable("RUNTIME_STAMP", cwd=tmp_path)).touch()
    return tmp_path


def test_the_install_stamp_follows_the_lock(project_copy: Path) -> None:
    # make -q: exit 0 when the target is up to date, 1 when it would run something.
    assert make("-q", "install-runtime", cwd=project_copy).returncode == 0
    lock = project_copy / "requirements/runtime.txt"
    lock.write_text(lock.read_text().replace("\n", "\n# changed by `make lock`\n", 1))
    assert make("-q", "install-runtime", cwd=project_copy).returncode == 1

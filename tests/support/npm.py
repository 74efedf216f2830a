"""npm packages for the JavaScript tests: ``npm ci`` from a committed lock file, once, under a
file lock (two xdist workers may reach it together). Without node or npm a test fails, it
never skips: these tests are the only proof that a JavaScript client works."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the JavaScript client tests need node 20+ and npm")
    return path


def installed(package_dir: Path) -> None:
    """node_modules from the lock file, installed when missing or older than the lock."""
    npm = tool("npm")
    marker = package_dir / "node_modules" / ".package-lock.json"
    lock = package_dir / "package-lock.json"
    with lock.open("rb") as handle:  # locking the lock file itself: no file of our own
        fcntl.flock(handle, fcntl.LOCK_EX)  # another xdist worker may be installing
        if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
            return
        done = subprocess.run(  # noqa: S603 - a fixed command
            [npm, "ci", "--prefix", str(package_dir), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"


@contextmanager
def locked(package_dir: Path, *, shared: bool) -> Iterator[None]:
    """The package's file lock: exclusive to write node_modules or a build, shared to use them
    (a node process must never import a bundle another worker is rewriting)."""
    with (package_dir / "package-lock.json").open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield


def _newest(paths: list[Path]) -> float:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return max(f.stat().st_mtime for f in files)


def built(package_dir: Path, script: str, *, output: Path, sources: list[Path]) -> None:
    """``npm run <script>`` unless ``output`` is newer than every file of ``sources``."""
    npm = tool("npm")
    with locked(package_dir, shared=False):
        if output.exists() and output.stat().st_mtime >= _newest(sources):
            return
        done = subprocess.run(  # noqa: S603 - a fixed command
            [npm, "run", "--silent", "--prefix", str(package_dir), script],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, f"npm run {script} failed:\n{done.stdout}\n{done.stderr}"

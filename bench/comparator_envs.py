"""The LangServe comparator's own venv, .venv-langserve, made from bench/langserve-requirements.txt.

LangServe 0.3.3 pins sse-starlette<2 and our service needs sse-starlette 3, so LangServe
cannot live in .venv. Its venv is made (with the interpreter .venv was made from) when it
is missing, and made anew when the lock changed: a marker file named after the lock's hash
says which lock it holds. The lock (bench/langserve-requirements.txt, every package pinned
with hashes; compiled from bench/langserve-requirements.in, see its header) keeps the
serving stack the same as ours: the only difference between the two venvs is LangServe.

When it cannot be made (no network, no pip), ``langserve_python`` raises ``EnvUnavailable``
with the reason, and bench/agent_path.py skips the LangServe rows and says why.

Run ``python -m bench.comparator_envs`` to make it ahead of a benchmark.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGSERVE_VENV = ROOT / ".venv-langserve"
LANGSERVE_LOCK = ROOT / "bench" / "langserve-requirements.txt"
INSTALL_TIMEOUT_S = 900
# Imported once after the install: the venv is only marked good if its server can start.
_SMOKE = "import langserve, sse_starlette, uvicorn, uvloop, httptools; import bench.bare_app"


class EnvUnavailable(RuntimeError):
    """The comparator's venv could not be made; the message says why."""


def _marker(venv_dir: Path, lock: Path) -> Path:
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    return venv_dir / f".lock-{digest}"


def _run(step: str, command: list[str]) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvUnavailable(f"{step}: {exc}") from None
    if done.returncode != 0:
        # pip's last lines say what failed (the first are its index warnings)
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise EnvUnavailable(f"{step} exited {done.returncode}: {tail}")


def ensure_venv(venv_dir: Path, lock: Path) -> Path:
    """The venv's python, after making the venv from ``lock`` if it does not hold it yet."""
    python = venv_dir / "bin" / "python"
    marker = _marker(venv_dir, lock)
    if python.exists() and marker.exists():
        return python
    print(f"making {venv_dir.name} from {lock.name} ...", flush=True)
    try:
        # clear: a venv of an older lock starts over rather than carrying its leftovers
        venv.EnvBuilder(clear=True, symlinks=True, with_pip=True).create(venv_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EnvUnavailable(f"creating {venv_dir.name}: {exc}") from None
    install = [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(lock)]
    _run("pip install", install)
    _run("import check", [str(python), "-c", _SMOKE])
    marker.touch()  # only now: an interrupted install is redone next time
    print(f"made {venv_dir.name}", flush=True)
    return python


def langserve_python() -> Path:
    """The python of .venv-langserve, made or remade first if needed."""
    return ensure_venv(LANGSERVE_VENV, LANGSERVE_LOCK)


if __name__ == "__main__":
    try:
        print(langserve_python())
    except EnvUnavailable as exc:
        print(f"LangServe venv unavailable: {exc}", file=sys.stderr)
        sys.exit(1)

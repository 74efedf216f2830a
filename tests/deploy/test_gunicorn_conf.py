"""docker/gunicorn.conf.py takes its variables from the environment or from `.env`."""

from __future__ import annotations

import os
import re
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.gunicorn_env import GUNICORN_ENV
from tests.deploy.support import ROOT, SETTINGS_FIELDS
from tests.support.ports import free_port

CONF = ROOT / "docker/gunicorn.conf.py"


def names_read_by_conf() -> set[str]:
    text = CONF.read_text()
    return set(re.findall(r'os\.environ\.(?:get|setdefault)\(\s*"([A-Z0-9_]+)"', text))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an environment without the config's variables."""
    monkeypatch.chdir(tmp_path)
    for name in names_read_by_conf() | GUNICORN_ENV:
        # setenv first: monkeypatch then also undoes what the config exports from .env.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return tmp_path


def load_conf() -> dict[str, Any]:
    """The config's globals, as gunicorn gets them (it runs the file the same way)."""
    return runpy.run_path(str(CONF))


def test_the_shared_list_is_what_the_config_reads() -> None:
    # Settings lets exactly these through in .env: a name the config reads but the list
    # lacks would be refused there, a listed name the config ignores would pass silently.
    assert names_read_by_conf() - SETTINGS_FIELDS == GUNICORN_ENV


def test_defaults_without_dotenv(workdir: Path) -> None:
    conf = load_conf()
    assert conf["keepalive"] == 75
    assert conf["timeout"] == 60
    assert conf["graceful_timeout"] == 30


def test_dotenv_sets_the_gunicorn_variables(workdir: Path) -> None:
    (workdir / ".env").write_text(
        "GUNICORN_KEEPALIVE=5\nGUNICORN_TIMEOUT=90\nGUNICORN_BIND=127.0.0.1:9001\n"
        "GUNICORN_WORKER_TMP_DIR=/dev/shm\n"
    )
    conf = load_conf()
    assert conf["keepalive"] == 5
    assert conf["timeout"] == 90
    assert conf["bind"] == "127.0.0.1:9001"
    assert conf["worker_tmp_dir"] == "/dev/shm"


def test_the_environment_wins_over_dotenv(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text("GUNICORN_KEEPALIVE=5\nGUNICORN_TIMEOUT=90\n")
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "80")
    conf = load_conf()
    assert conf["keepalive"] == 80
    assert conf["timeout"] == 90


def test_a_misspelt_name_in_dotenv_stops_it_with_one_clear_message(workdir: Path) -> None:
    (workdir / ".env").write_text("GUNICORN_KEEPALIV=5\n")
    with pytest.raises(SystemExit) as info:
        load_conf()
    assert str(info.value) == (
        "invalid configuration:\n  GUNICORN_KEEPALIV: Extra inputs are not permitted"
    )


@pytest.mark.e2e
def test_gunicorn_binds_where_dotenv_says(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(
        f"GUNICORN_BIND=127.0.0.1:{port}\nWORKERS=1\nGUNICORN_KEEPALIVE=5\n"
        "ENVIRONMENT=development\nADMIN_PASSWORD=admin-test-password\nBCRYPT_ROUNDS=4\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in names_read_by_conf() | SETTINGS_FIELDS}
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(CONF), "app.entrypoints.asgi:app"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=0.5)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            assert response.status_code == 200
            return
        logs = (tmp_path / "gunicorn.log").read_text(errors="replace")
        pytest.fail(f"gunicorn did not listen on the .env bind:\n{logs}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

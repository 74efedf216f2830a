"""Run the real service (uvicorn or gunicorn) as a child process on a free port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import process_logs
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
# The AG-UI, A2A and MCP surfaces import their SDKs at start-up: about 2 of the 5 s of CPU
# a server process takes to become live here, paid by every one of the suite's few hundred
# servers. They are on by default in the product; a test that speaks one turns it on with
# PROTOCOLS_ON (the OpenAI surface costs 0.1 s and stays on everywhere).
PROTOCOLS_OFF = {
    "PROTOCOL_AGUI_ENABLED": "false",
    "PROTOCOL_A2A_ENABLED": "false",
    "PROTOCOL_MCP_ENABLED": "false",
}
PROTOCOLS_ON = dict.fromkeys(PROTOCOLS_OFF, "true")

TEST_ENV = {
    **PROTOCOLS_OFF,
    "ENVIRONMENT": "development",
    "BCRYPT_ROUNDS": "4",
    "ADMIN_USERNAME": "admin",
    "ADMIN_PASSWORD": "admin-test-password",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
}


class ServerProcess:
    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        gunicorn: bool = False,
        workers: int = 2,
        cwd: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.cwd = cwd  # where a team's plug-ins (AGENTS, TOOLS) live
        self.gunicorn = gunicorn
        self.workers = workers
        self.log_path = Path(tempfile.mkstemp(prefix="agent-service-log-", suffix=".log")[1])
        process_logs.watch(
            self.log_path, f"the server on port {self.port}", lambda: self.process is not None
        )
        self.env = {**os.environ, **TEST_ENV, **(env or {})}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.gunicorn:
            self.env["GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
            self.env["WORKERS"] = str(self.workers)
            metrics_dir = tempfile.mkdtemp(prefix="agent-service-metrics-")
            self.env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            return [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "docker/gunicorn.conf.py"),
                "app.entrypoints.asgi:app",
            ]
        return [
            sys.executable,
            "-m",
            "app.entrypoints.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def start(self, timeout: float = 60) -> ServerProcess:
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), cwd=self.cwd, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=0.5).status_code == 200:
                    if self._listening():
                        return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become live:\n{self.logs()}")

    def _listening(self) -> bool:
        """Our own process bound the port: free_port() only found it free a moment ago, and
        another test's server may have taken it since (then that one answers /health/live and
        ours fails to bind); both servers log the address they listen on."""
        pattern = rf"(running on|Listening at:) http://127\.0\.0\.1:{self.port}\b"
        if re.search(pattern, self.logs()):
            return True
        if "already in use" in self.logs():
            raise RuntimeError(f"port {self.port} was taken before the server bound it")
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON lines logged so far: complete ones only. A running server may be writing
        one (an access line is written after its response has gone), and until its newline
        is in the file it is not a line yet."""
        complete = self.logs().split("\n")[:-1]
        return [json.loads(line) for line in complete if line.startswith("{")]

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)
        process_logs.forget(self.log_path)

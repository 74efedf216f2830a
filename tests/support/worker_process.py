"""Run `python -m app.entrypoints.cli worker` as a child process: tasks outside the API."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from redis import Redis
from redis.sentinel import Sentinel

from app.core.redis_url import parse_redis_url
from tests.support import process_logs
from tests.support.ports import free_port
from tests.support.server_process import ROOT, TEST_ENV


class WorkerProcess:
    """One worker with its own WORKER_ID and /metrics port, stopped through its Popen only."""

    def __init__(self, *, env: dict[str, str], name: str | None = None) -> None:
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.metrics_port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="agent-service-worker-", suffix=".log")[1])
        process_logs.watch(self.log_path, f"worker {self.name}", self._running)
        self.env = {
            **os.environ,
            **TEST_ENV,
            "WORKER_ID": self.name,
            "WORKER_METRICS_PORT": str(self.metrics_port),
            **env,
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._readers_before: set[str] = set()

    def _running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def launch(self) -> WorkerProcess:
        """Start the process without waiting (several processes can boot in parallel)."""
        self._readers_before = _queue_readers(self.env["REDIS_URL"])
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.entrypoints.cli", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 30) -> WorkerProcess:
        """Wait until it logged its start, serves /metrics and is blocked reading the queue."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.logs()}")
            if (
                "worker_started" in self.logs()
                and self._serving_metrics()
                and _queue_readers(self.env["REDIS_URL"]) - self._readers_before
            ):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"worker did not start consuming:\n{self.logs()}")

    def start(self, timeout: float = 30) -> WorkerProcess:
        return self.launch().wait_ready(timeout)

    def _serving_metrics(self) -> bool:
        try:
            return httpx.get(self.metrics_url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of this worker's /metrics (0.0 when absent)."""
        text = httpx.get(self.metrics_url, timeout=2).text
        selector = re.escape(f"{{{labels}}}") if labels else ""
        match = re.search(rf"^{name}{selector} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def signal(self, sig: int) -> None:
        assert self.process is not None and self.process.poll() is None, "worker not running"
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        self.returncode = self.process.wait(timeout=timeout)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: the worker dies without releasing anything (a crashed pod)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.returncode = self.process.wait()

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return self.returncode
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.returncode = self.process.returncode
        return self.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def close(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)
        process_logs.forget(self.log_path)

    def __exit__(self, *exc: object) -> None:
        self.close()


def _queue_readers(redis_url: str) -> set[str]:
    """Ids of connections whose last command was XREADGROUP: workers reading a queue (on a
    cluster, those of every node the URL names; under Sentinel, the primary's), each prefixed
    by its node.

    A new id after launch is the new worker's (wait for one worker at a time)."""
    readers: set[str] = set()
    for node in _data_nodes(redis_url):
        client = Redis.from_url(node, decode_responses=True, socket_timeout=2)
        try:
            infos = client.client_list()
        finally:
            client.close()
        readers |= {f"{node}/{info['id']}" for info in infos if info.get("cmd") == "xreadgroup"}
    return readers


def _data_nodes(redis_url: str) -> list[str]:
    target = parse_redis_url(redis_url)
    if target.mode == "cluster":
        return [f"redis://{host}:{port}" for host, port in target.nodes]
    if target.mode == "sentinel":
        assert target.primary_name is not None
        sentinels = Sentinel(list(target.nodes), socket_timeout=2)  # type: ignore[no-untyped-call]
        host, port = sentinels.discover_master(target.primary_name)  # type: ignore[no-untyped-call]
        return [f"redis://{host}:{port}/{target.db}"]
    return [redis_url]

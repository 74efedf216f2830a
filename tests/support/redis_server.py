"""A private redis-server on a free port that tests can stop and restart (outage tests), and
the node process every test topology (tests/support/redis_topologies.py) is made of."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port


def redis_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed; run `make test` to install it")
    return path


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            # A server with a password answers NOAUTH: up all the same.
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisNode:
    """One redis-server process on `port`, its files in `workdir/<port>`, `extra` options."""

    def __init__(self, port: int, workdir: Path, extra: list[str] | None = None) -> None:
        self.port = port
        self.dir = workdir / str(port)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [
                redis_binary("redis-server"),
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            if (code := self.process.poll()) is not None:  # the port taken, most likely
                self.process = None
                raise RuntimeError(f"redis-server on port {self.port} exited at start ({code})")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def ping(self) -> bool:
        return ping(self.port)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class RedisServer(RedisNode):
    def __init__(self) -> None:
        redis_binary("redis-server")  # fail at construction, with the hint, when missing
        super().__init__(free_port(), Path(tempfile.mkdtemp(prefix="agent-service-redis-")))
        self.workdir = self.dir.parent

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

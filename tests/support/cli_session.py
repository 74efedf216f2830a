"""`agent-service` client verbs as a user drives them: a child process whose output is
read as it comes and whose stdin is written when a prompt shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from tests.support.server_process import ROOT


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CliSession:
    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.entrypoints.cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As a terminal's foreground process: Ctrl-C (SIGINT) is delivered. A shell that
            # started the test run in the background (`cmd &`) ignores SIGINT, and children
            # inherit that, so the CLI would never see the interrupt the test sends.
            preexec_fn=_default_sigint,
        )
        self.stdout = ""
        self.stderr = ""
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        stream = getattr(self.process, name)
        while char := stream.read(1):
            with self._lock:
                setattr(self, name, getattr(self, name) + char)

    def wait_for(self, text: str, *, where: str = "stderr", timeout: float = 15) -> None:
        """Until ``text`` shows on stdout or stderr (an event, not a sleep: polled)."""
        deadline = time.monotonic() + timeout
        while text not in getattr(self, where):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self._drain()
                if text in getattr(self, where):
                    return
                raise AssertionError(
                    f"{text!r} not on {where}; stdout={self.stdout!r} stderr={self.stderr!r}"
                )
            time.sleep(0.02)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 15) -> int:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(timeout=timeout)
        self._drain()
        return code

    def _drain(self) -> None:
        if self.process.poll() is not None:  # exited: the pipes end, the readers finish
            for reader in self._readers:
                reader.join(timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

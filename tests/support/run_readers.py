"""Clients that follow a run's server-sent events against a real server process.

``SseReader``: httpx, read at the test's pace, dropped (its socket closed) at will.
``SlowSocketReader``: a raw socket with a tiny receive buffer read one event at a time, so a
reader that falls behind pushes back on the server through TCP for real (an httpx client
would buffer ahead of the test).
``settled_rss_mb``: the memory the server process holds once a burst has passed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.sse import Frame, parse_lines

TERMINAL = frozenset({"run_completed", "error"})
Wire = tuple[str | None, str | None, str]


def wire(frames: list[Frame]) -> list[Wire]:
    """What a client received, frame for frame: id, event name, data."""
    return [(frame.id, frame.event, frame.data) for frame in frames]


def ids(frames: list[Frame]) -> list[int]:
    return [int(frame.id) for frame in frames if frame.id is not None]


def tokens(frames: list[Frame]) -> str:
    return "".join(str(frame.json["text"]) for frame in frames if frame.event == "token")


class SseReader:
    """One SSE response, event frames only (keep-alive comments skipped)."""

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        headers: dict[str, str],
        body: dict[str, Any] | None = None,
        last_event_id: str | None = None,
    ) -> None:
        headers = dict(headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._client = httpx.Client(base_url=base_url, timeout=10)
        method = "GET" if body is None else "POST"
        request = self._client.build_request(method, path, json=body, headers=headers)
        self.response = self._client.send(request, stream=True)
        if self.response.status_code != 200:
            self.response.read()
            self.drop()
            raise AssertionError(f"{path}: {self.response.status_code} {self.response.text}")
        self._frames: Iterator[Frame] = (
            frame for frame in parse_lines(self.response.iter_lines()) if frame.event
        )

    @property
    def run_id(self) -> str:
        return self.response.headers["x-run-id"]

    def take(self, count: int) -> list[Frame]:
        frames = [next(self._frames) for _ in range(count)]
        assert not any(frame.event in TERMINAL for frame in frames[:-1]), wire(frames)
        return frames

    def rest(self) -> list[Frame]:
        """Every frame up to the run's end, then the connection is closed."""
        frames: list[Frame] = []
        try:
            for frame in self._frames:
                frames.append(frame)
                if frame.event in TERMINAL:
                    break
        finally:
            self.drop()
        return frames

    def drop(self) -> None:
        """Close the connection, as a client that goes away does."""
        self.response.close()
        self._client.close()


class SlowSocketReader:
    """An SSE request on a raw socket with a small receive buffer, read an event at a time."""

    RECEIVE_BUFFER = 4096

    def __init__(
        self, port: int, path: str, *, headers: dict[str, str], body: dict[str, Any] | None = None
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect: the window the server sees is this small from the first byte.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [
            f"{'GET' if body is None else 'POST'} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Accept: text/event-stream",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        self._raw = bytearray()  # received, not yet de-chunked
        self._body = bytearray()  # de-chunked, not yet split into frames
        self._ready: deque[Frame] = deque()  # parsed, not yet taken
        self._recv_size = 1024  # small reads while slow; drain() reads at full speed
        status, self.headers = self._head()
        assert status.split()[1] == "200", status
        self._chunked = self.headers.get("transfer-encoding") == "chunked"
        self.events: list[Frame] = []
        self.failure: BaseException | None = None

    def _recv(self) -> None:
        data = self.sock.recv(self._recv_size)
        if not data:
            raise EOFError("the server closed the stream")
        self._raw += data

    def _head(self) -> tuple[str, dict[str, str]]:
        while (end := self._raw.find(b"\r\n\r\n")) < 0:
            self._recv()
        head = bytes(self._raw[:end])
        del self._raw[: end + 4]
        status, *lines = head.decode().split("\r\n")
        pairs = (line.partition(":") for line in lines)
        return status, {name.strip().lower(): value.strip() for name, _, value in pairs}

    def _more_body(self) -> None:
        """Move every complete chunk received so far into the body, receiving if none is."""
        if not self._chunked:
            if not self._raw:
                self._recv()
            self._body += self._raw
            self._raw.clear()
            return
        while True:
            pos = 0
            while (end := self._raw.find(b"\r\n", pos)) >= 0:
                size = int(bytes(self._raw[pos:end]).split(b";")[0], 16)
                start = end + 2
                if size == 0 and pos == 0:
                    raise EOFError("the stream ended")
                if size == 0 or len(self._raw) < start + size + 2:
                    break
                self._body += self._raw[start : start + size]
                pos = start + size + 2
            if pos:
                del self._raw[:pos]
                return
            self._recv()

    def next_event(self) -> Frame:
        while not self._ready:
            end = self._body.rfind(b"\n\n")
            if end < 0:
                self._more_body()
                continue
            text = self._body[:end].decode()
            del self._body[: end + 2]
            lines = iter([*text.split("\n"), ""])
            self._ready.extend(frame for frame in parse_lines(lines) if frame.event)
        return self._ready.popleft()

    def crawl(self, stop: threading.Event, every: float = 1.0) -> None:
        """One event every ``every`` seconds until ``stop`` (a thread's target)."""
        try:
            while not stop.is_set():
                self.events.append(self.next_event())
                if self.events[-1].event in TERMINAL:
                    return
                stop.wait(every)
        except BaseException as exc:  # the test reads it
            self.failure = exc

    def drain(self) -> list[Frame]:
        """The rest of the stream at full speed, up to the run's end."""
        self._recv_size = 1 << 20
        while not self.events or self.events[-1].event not in TERMINAL:
            self.events.append(self.next_event())
        return self.events

    def close(self) -> None:
        self.sock.close()


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def settled_rss_mb(pid: int, settle: float = 0.5, window: float = 1.0) -> float:
    """What a process holds once a burst has passed: the least resident memory it shows
    over ``window`` seconds, sampled 20 times a second after ``settle`` seconds.

    A run's end briefly copies its whole output (record, cache entry, final event), a spike
    of up to 120 MB for a megabytes-long run whose height a peak sampler catches or misses
    by chance; memory the server holds for lagging readers stays through the window.
    """
    time.sleep(settle)
    deadline = time.monotonic() + window
    least = rss_mb(pid)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        least = min(least, rss_mb(pid))
    return least

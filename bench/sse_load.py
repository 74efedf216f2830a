"""A small raw-socket HTTP/1.1 client for server-sent events, for benchmarks.

One asyncio process must drive a thousand streams without becoming the bottleneck, and
httpx costs several times more CPU per frame than splitting bytes. So: one keep-alive
socket per stream, the response head parsed by hand, the chunked body decoded
incrementally, frames split on the blank line. Loopback only; nothing here validates HTTP
beyond what the benchmarks' own servers send.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

READ_SIZE = 65536


class LoadError(RuntimeError):
    """The server answered something a benchmark cannot count."""


@dataclass(slots=True)
class Head:
    status: int
    headers: dict[str, str]
    received_at: float  # time.time() when the head was complete


class ChunkedFrames:
    """Chunked transfer-encoding in, complete SSE frames out (``feed`` per read)."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._body = bytearray()
        self._left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        self._raw += data
        raw = self._raw
        while raw and not self.done:
            if self._left:
                take = min(self._left, len(raw))
                self._body += raw[:take]
                del raw[:take]
                self._left -= take
                if self._left == 0:
                    del self._body[-2:]  # the CRLF after a chunk's data
                continue
            end = raw.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(raw[:end]).split(b";", 1)[0], 16)
            del raw[: end + 2]
            if size == 0:
                self.done = True
            else:
                self._left = size + 2
        return self._frames()

    def _frames(self) -> list[bytes]:
        body = self._body
        cut = body.rfind(b"\n\n")
        if cut < 0:
            return []
        frames = bytes(body[:cut]).split(b"\n\n")
        del body[: cut + 2]
        return frames


async def read_head(reader: asyncio.StreamReader) -> tuple[Head, bytes]:
    """The response's status and headers (lower-cased), and whatever body bytes came along."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = await reader.read(READ_SIZE)
        if not data:
            raise LoadError(f"connection closed before the response head: {buffer[:200]!r}")
        buffer += data
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(status, headers, time.time()), rest


def request_bytes(
    method: str, path: str, host: str, headers: dict[str, str], body: dict[str, object] | None
) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def read_body(
    reader: asyncio.StreamReader, head: Head, rest: bytes
) -> tuple[ChunkedFrames, list[bytes]]:
    """Every frame of one chunked response (for the throughput loop: no per-frame times)."""
    if head.headers.get("transfer-encoding", "").lower() != "chunked":
        raise LoadError(f"expected a chunked event stream, got headers {head.headers}")
    decoder = ChunkedFrames()
    frames = decoder.feed(rest)
    while not decoder.done:
        data = await reader.read(READ_SIZE)
        if not data:
            raise LoadError("connection closed mid-stream")
        frames += decoder.feed(data)
    return decoder, frames


# --- throughput: the same stream request over and over on kept-alive connections ----------


@dataclass(slots=True)
class StreamTally:
    streams: int = 0
    tokens: int = 0
    failures: list[str] = field(default_factory=list)


async def stream_loop(
    host: str, port: int, request: bytes, deadline: float, tally: StreamTally
) -> None:
    """Send ``request``, read the whole stream, repeat until ``deadline`` (monotonic)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head, rest = await read_head(reader)
            if head.status != 200:
                body = rest + await reader.read(READ_SIZE)
                tally.failures.append(f"{head.status}: {body[:200]!r}")
                return
            _, frames = await read_body(reader, head, rest)
            if not frames or not frames[-1].startswith(b"event: run_completed"):
                last = frames[-1][:200] if frames else b""
                tally.failures.append(f"stream did not complete: {last!r}")
                return
            tally.streams += 1
            tally.tokens += sum(1 for frame in frames if frame.startswith(b"event: token\n"))
    finally:
        writer.close()


# --- followers: one reader of GET /v1/runs/{id}/events, timing every token frame ----------


@dataclass(slots=True)
class ReaderResult:
    attached_at: float = 0.0
    seqs: list[int] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)  # seconds, live token frames only
    first_live_at: float = 0.0  # time.time() the first live token frame arrived
    token_frames: int = 0
    completed: bool = False
    error: str | None = None


def _frame_seq_ts(frame: bytes) -> tuple[int, float]:
    """The id line and the ``ts`` of one frame, without parsing the whole JSON."""
    at = frame.index(b'"ts":"') + 6
    ts = datetime.fromisoformat(frame[at : frame.index(b'"', at)].decode()).timestamp()
    return int(frame[frame.rindex(b"\nid: ") + 5 :]), ts


async def open_stream(
    host: str, port: int, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Head, bytes]:
    """Connect, send ``request`` and read the response head."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head, rest = await read_head(reader)
    except BaseException:
        writer.close()
        raise
    return reader, writer, head, rest


async def follow(
    host: str,
    port: int,
    request: bytes,
    result: ReaderResult,
    *,
    gate: asyncio.Semaphore,
    attached: asyncio.Event,
) -> None:
    """Read one run's events to the end; each live token frame's arrival minus its ``ts``.
    ``gate`` bounds the handshakes in flight (clients arriving, not a SYN flood);
    ``attached`` is set once the head is in (or the attempt failed)."""
    try:
        async with gate:
            reader, writer, head, rest = await open_stream(host, port, request)
    except (OSError, LoadError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        attached.set()
        return
    result.attached_at = head.received_at
    attached.set()
    try:
        if head.status != 200:
            result.error = f"{head.status}: {rest[:200]!r}"
            return
        await _read_events(reader, rest, result)
    except (OSError, LoadError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()


async def _read_events(reader: asyncio.StreamReader, data: bytes, result: ReaderResult) -> None:
    decoder = ChunkedFrames()
    while True:
        arrived = time.time()  # before decoding: the client's own work is not lateness
        for frame in decoder.feed(data):
            if frame.startswith(b":"):
                continue  # keep-alive comment
            seq, ts = _frame_seq_ts(frame)
            result.seqs.append(seq)
            if frame.startswith(b"event: token\n"):
                result.token_frames += 1
                if ts >= result.attached_at:  # live, not history replayed on attach
                    result.lateness.append(arrived - ts)
                    result.first_live_at = result.first_live_at or arrived
            elif frame.startswith(b"event: run_completed\n"):
                result.completed = True
        if decoder.done:
            return
        data = await reader.read(READ_SIZE)
        if not data:
            raise LoadError("connection closed mid-stream")


async def start_run(host: str, port: int, request: bytes) -> str:
    """POST a stream, keep only its X-Run-ID, and hang up (the run must say continue)."""
    _, writer, head, rest = await open_stream(host, port, request)
    writer.close()
    if head.status != 200 or "x-run-id" not in head.headers:
        raise LoadError(f"starting a run answered {head.status}: {rest[:200]!r}")
    return head.headers["x-run-id"]

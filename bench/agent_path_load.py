"""Load loops of bench/agent_path.py: invokes, back-to-back streams, and 1,000 paced streams.

All on raw keep-alive sockets (bench/sse_load.py: its head parser, chunked decoder and
single-stream follower), one asyncio process on uvloop, so one client core can drive a
server core without becoming the bottleneck; each measurement also reports the client's
own CPU share, which says whether it did. The stream loops read any server's frames: a row's
``Frames`` says what its token frames and its last frame start with and what ends a frame
(ours and the bare and naive apps: ``event: token`` ... ``event: run_completed``; LangServe:
``event: data`` ... ``event: end``, CRLF-separated).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench import sse_load
from bench.run_log_readers import machine_busy, percentile, rss_kib
from bench.security_overhead import cpu_seconds

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Frames:
    """How a server's event stream is framed: what a token frame and the last frame start
    with, and what ends a frame. ``blank`` marks a frame that starts like a token frame but
    carries no text (LangServe's closing chunk): not a token."""

    token: bytes
    end: bytes
    separator: bytes = b"\n\n"
    blank: bytes | None = None

    def is_token(self, frame: bytes) -> bool:
        if not frame.startswith(self.token):
            return False
        return self.blank is None or not frame.startswith(self.blank)

    def decoder(self) -> sse_load.ChunkedFrames:
        if self.separator == b"\n\n":
            return sse_load.ChunkedFrames()
        return SeparatedFrames(self.separator)


# Ours, bench/bare_app.py's and bench/naive_app.py's frames.
RUN_FRAMES = Frames(token=b"event: token\n", end=b"event: run_completed\n")
# LangServe's (sse-starlette 1 separates lines with CRLF): one data frame per chunk, the
# content first in its JSON.
LANGSERVE_FRAMES = Frames(
    token=b'event: data\r\ndata: {"content":"',
    end=b"event: end",
    separator=b"\r\n\r\n",
    blank=b'event: data\r\ndata: {"content":"",',
)


class SeparatedFrames(sse_load.ChunkedFrames):
    """bench/sse_load.py's chunked decoder, splitting frames on another separator."""

    def __init__(self, separator: bytes) -> None:
        super().__init__()
        self.separator = separator

    def _frames(self) -> list[bytes]:
        body, sep = self._body, self.separator
        cut = body.rfind(sep)
        if cut < 0:
            return []
        frames = bytes(body[:cut]).split(sep)
        del body[: cut + len(sep)]
        return frames


def frame_ts(frame: bytes) -> float:
    """The first ``"ts"`` of a frame (the frame's own, or LangServe's chunk metadata's), as
    a POSIX time, without parsing the JSON."""
    at = frame.index(b'"ts":"') + 6
    return datetime.fromisoformat(frame[at : frame.index(b'"', at)].decode()).timestamp()


@dataclass(slots=True)
class Tally:
    requests: int = 0
    tokens: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, request to end
    ttft: list[float] = field(default_factory=list)  # seconds, request to first token frame
    failures: list[str] = field(default_factory=list)


async def invoke_loop(port: int, request: bytes, deadline: float, tally: Tally) -> None:
    """Send ``request``, read the whole JSON answer, repeat until ``deadline`` (monotonic)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            writer.write(request)
            head, body = await sse_load.read_head(reader)
            length = int(head.headers.get("content-length", "-1"))
            if length < 0:
                tally.failures.append(f"{head.status} without content-length: {head.headers}")
                return
            while len(body) < length:
                data = await reader.read(sse_load.READ_SIZE)
                if not data:
                    raise sse_load.LoadError("connection closed mid-body")
                body += data
            if head.status != 200 or not body.startswith(b'{"output":'):
                tally.failures.append(f"{head.status}: {body[:200]!r}")
                return
            tally.latencies.append(time.perf_counter() - began)
            tally.requests += 1
    finally:
        writer.close()


async def stream_loop(
    port: int, request: bytes, deadline: float, tally: Tally, frames: Frames = RUN_FRAMES
) -> None:
    """One stream after another on one connection; time to the first token frame of each."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            writer.write(request)
            head, data = await sse_load.read_head(reader)
            if head.status != 200:
                tally.failures.append(f"{head.status}: {data[:200]!r}")
                return
            decoder = frames.decoder()
            tokens, first, last = 0, 0.0, b""
            while True:
                for frame in decoder.feed(data):
                    if frames.is_token(frame):
                        tokens += 1
                        first = first or time.perf_counter()
                    last = frame
                if decoder.done:
                    break
                data = await reader.read(sse_load.READ_SIZE)
                if not data:
                    raise sse_load.LoadError("connection closed mid-stream")
            if not last.startswith(frames.end) or not first:
                tally.failures.append(f"stream did not complete: {last[:200]!r}")
                return
            tally.ttft.append(first - began)
            tally.latencies.append(time.perf_counter() - began)
            tally.requests += 1
            tally.tokens += tokens
    finally:
        writer.close()


Loop = Callable[[int, bytes, float, Tally], Awaitable[None]]


async def _drive(loop: Loop, port: int, request: bytes, seconds: float, connections: int) -> Any:
    tally = Tally()
    started = time.monotonic()
    await asyncio.gather(
        *(loop(port, request, started + seconds, tally) for _ in range(connections))
    )
    return tally, time.monotonic() - started


def _ms(values: list[float], pct: float) -> float:
    return round(percentile(values, pct) * 1000, 2) if values else 0.0


async def measure(
    loop: Loop, pid: int, port: int, request: bytes, seconds: float, connections: int
) -> dict[str, Any]:
    """One measured run: rates, latency percentiles, and the server's CPU per request and
    per token (user + system from /proc: the figure to read on a noisy machine)."""
    cpu0, client0, busy0 = cpu_seconds(pid), time.process_time(), machine_busy()
    tally, elapsed = await _drive(loop, port, request, seconds, connections)
    server_cpu = cpu_seconds(pid) - cpu0
    client_cpu, busy = time.process_time() - client0, machine_busy() - busy0
    if tally.failures:
        raise sse_load.LoadError(f"{len(tally.failures)} failed, first: {tally.failures[0]}")
    requests = max(tally.requests, 1)
    result = {
        "requests": tally.requests,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(tally.requests / elapsed, 1),
        "p50_ms": _ms(tally.latencies, 50),
        "p99_ms": _ms(tally.latencies, 99),
        "server_cpu_us_per_request": round(server_cpu / requests * 1e6, 1),
        "server_cpu_share": round(server_cpu / elapsed, 3),
        "client_cpu_share": round(client_cpu / elapsed, 3),
        "machine_busy_cores": round(busy / elapsed, 2),
    }
    if tally.ttft:
        result |= {
            "tokens": tally.tokens,
            "tokens_per_s": round(tally.tokens / elapsed, 1),
            "ttft_p50_ms": _ms(tally.ttft, 50),
            "ttft_p99_ms": _ms(tally.ttft, 99),
            "server_cpu_us_per_event": round(server_cpu / max(tally.tokens, 1) * 1e6, 2),
        }
    return result


# --- S4: many open paced streams ------------------------------------------------------


@dataclass(slots=True)
class Timed:
    """One stream of S4: when its head came, and (ts, arrival) of each token frame."""

    attached_at: float = 0.0
    tokens: list[tuple[float, float]] = field(default_factory=list)
    completed: bool = False
    error: str | None = None


async def follow_timed(
    port: int,
    request: bytes,
    out: Timed,
    gate: asyncio.Semaphore,
    attached: asyncio.Event,
    frames: Frames = RUN_FRAMES,
    stop_after: int | None = None,
) -> None:
    """Read one stream to its end (or hang up after ``stop_after`` tokens: warm-up)."""
    try:
        async with gate:
            reader, writer, head, data = await sse_load.open_stream(HOST, port, request)
    except (OSError, sse_load.LoadError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        attached.set()
        return
    out.attached_at = head.received_at
    attached.set()
    try:
        if head.status != 200:
            out.error = f"{head.status}: {data[:200]!r}"
            return
        decoder = frames.decoder()
        while True:
            arrived = time.time()  # before decoding: the client's own work is not lateness
            for frame in decoder.feed(data):
                if frames.is_token(frame):
                    out.tokens.append((frame_ts(frame), arrived))
                elif frame.startswith(frames.end):
                    out.completed = True
            if decoder.done or (stop_after is not None and len(out.tokens) >= stop_after):
                return
            data = await reader.read(sse_load.READ_SIZE)
            if not data:
                raise sse_load.LoadError("connection closed mid-stream")
    except (OSError, sse_load.LoadError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()


async def _sample(pid: int, samples: list[tuple[float, float, int]], stop: asyncio.Event) -> None:
    """(time, server CPU s, RSS KiB) every 0.1 s until ``stop``, and once more after it."""
    while True:
        samples.append((time.time(), cpu_seconds(pid), rss_kib(pid)))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def warm_streams(port: int, request: bytes, count: int, frames: Frames = RUN_FRAMES) -> None:
    """Open ``count`` streams, read a few tokens, hang up: every path used once."""
    gate, outs = asyncio.Semaphore(count), [Timed() for _ in range(count)]
    await asyncio.gather(
        *(follow_timed(port, request, o, gate, asyncio.Event(), frames, 3) for o in outs)
    )
    if errors := [o.error for o in outs if o.error]:
        raise sse_load.LoadError(f"warm-up streams failed: {errors[0]}")


def _lateness(streams: list[Timed], interval: float) -> dict[str, Any]:
    """Lateness of the token frames sent while every stream was open (the first stream's
    head in to the first stream's last token), two ways: arrival minus the frame's ``ts``
    (delivery), and arrival minus where the pacing schedule puts it (the stream's first
    token ``ts`` + k x interval: delivery plus any slip of the model's pacing)."""
    all_open = max(s.attached_at for s in streams)
    first_end = min(s.tokens[-1][1] for s in streams)
    first_token = min(s.tokens[0][0] for s in streams)
    if first_end <= all_open:  # never all open at once: every frame, and say so
        all_open, first_end = 0.0, float("inf")
    delivery, schedule, everything = [], [], []
    for s in streams:
        start = s.tokens[0][0]
        for k, (ts, arrived) in enumerate(s.tokens):
            everything.append(arrived - ts)
            if all_open <= ts <= first_end:
                delivery.append(arrived - ts)
                schedule.append(arrived - (start + k * interval))
    return {
        # tokens flowing to every stream at once: from the later of every stream open and
        # the first token, to the first stream's end (0: never all open; all frames used)
        "all_open_window_s": round(first_end - max(all_open, first_token), 2) if all_open else 0.0,
        "lateness_samples": len(delivery),
        "lateness_p50_ms": _ms(delivery, 50),
        "lateness_p99_ms": _ms(delivery, 99),
        "lateness_max_ms": round(max(delivery, default=0.0) * 1000, 2),
        "schedule_lateness_p50_ms": _ms(schedule, 50),
        "schedule_lateness_p99_ms": _ms(schedule, 99),
        "all_frames_lateness_p99_ms": _ms(everything, 99),
    }


async def open_streams(
    pid: int,
    port: int,
    request: bytes,
    count: int,
    tokens: int,
    interval: float,
    frames: Frames = RUN_FRAMES,
) -> dict[str, Any]:
    """``count`` streams opened at once (32 handshakes in flight: clients arriving, not a
    SYN flood), each read to its end. Also server RSS before, with every stream open, and
    at its peak, and server CPU per delivered token frame."""
    rss_before = rss_kib(pid)
    streams = [Timed() for _ in range(count)]
    attached = [asyncio.Event() for _ in streams]
    gate = asyncio.Semaphore(32)
    samples: list[tuple[float, float, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(pid, samples, stop))
    client0, started, started_at = time.process_time(), time.monotonic(), time.time()
    tasks = [
        asyncio.create_task(follow_timed(port, request, s, gate, attached[i], frames))
        for i, s in enumerate(streams)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in attached)), 120)
    except TimeoutError:  # a finding about the server (a slow comparator), not a crash
        late = sum(not event.is_set() for event in attached)
        raise sse_load.LoadError(f"{late} of {count} streams not open after 120 s") from None
    attach_s = time.monotonic() - started
    rss_open = rss_kib(pid)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
    except TimeoutError:
        late = sum(not s.completed for s in streams)
        raise sse_load.LoadError(f"{late} of {count} streams not done after 300 s") from None
    stop.set()
    await sampler
    elapsed = time.monotonic() - started
    client_cpu = time.process_time() - client0
    wrong = [s for s in streams if s.error or not s.completed or len(s.tokens) != tokens]
    if wrong:
        w = wrong[0]
        raise sse_load.LoadError(
            f"{len(wrong)} of {count} streams wrong, first: {w.error} {len(w.tokens)} tokens"
        )
    delivered = sum(len(s.tokens) for s in streams)
    # CPU of delivering tokens: from the first token's arrival (the sample just before it)
    # to the end; opening the streams is counted apart, per stream.
    first = min(s.tokens[0][1] for s in streams)
    phase = max((x for x in samples if x[0] <= first), default=samples[0])
    opened = max((x for x in samples if x[0] <= started_at + attach_s), default=samples[0])
    server_cpu = samples[-1][1] - phase[1]
    peak = max(sample[2] for sample in samples)
    return {
        "streams": count,
        "all_open_after_s": round(attach_s, 2),
        "seconds": round(elapsed, 2),
        **_lateness(streams, interval),
        "rss_before_kib": rss_before,
        "rss_all_open_kib": rss_open,
        "rss_peak_kib": peak,
        "rss_per_stream_kib": round((rss_open - rss_before) / count, 1),
        "rss_peak_per_stream_kib": round((peak - rss_before) / count, 1),
        "token_frames": delivered,
        "server_cpu_us_per_event": round(server_cpu / max(delivered, 1) * 1e6, 1),
        "server_cpu_share": round(server_cpu / (samples[-1][0] - phase[0]), 3),
        "server_cpu_us_per_stream_opened": round((opened[1] - samples[0][1]) / count * 1e6),
        "client_cpu_share": round(client_cpu / elapsed, 3),
    }

"""Part 2 of bench/run_log.py: 1,000 SSE readers of 100 runs on one worker (see its
docstring for the method). Also the helpers both parts share."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvloop

from bench import sse_load
from bench.middleware_overhead import BenchError, _env_int, _login, _make_server
from bench.security_overhead import cpu_seconds
from tests.support.server_process import ServerProcess

HOST = "127.0.0.1"
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy so far (/proc/stat): minus
    this bench's own processes, what else ran on a shared machine meanwhile."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def gc_collections(base_url: str) -> dict[str, int]:
    """The server's garbage collections so far, by generation (prometheus_client's default
    collector on GET /metrics): a full (generation 2) collection stops every stream."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    found = re.findall(
        r'^python_gc_collections_total\{generation="(\d)"\} ([0-9.e+]+)$', text, re.M
    )
    return {generation: int(float(count)) for generation, count in found}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def server_pid(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def bench_headers(server: ServerProcess, password: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_login(server.url, password)}", "Cache-Control": "no-cache"}


# --- 1,000 readers of 100 runs ----------------------------------------------------------


# time.time(), server CPU s, client CPU s, RSS KiB, machine busy s
Sample = tuple[float, float, float, int, float]


async def _sample(pid: int, samples: list[Sample], stop: asyncio.Event) -> None:
    """Every 0.1 s until ``stop``, and once more after it."""
    while True:
        now = time.time()
        samples.append((now, cpu_seconds(pid), time.process_time(), rss_kib(pid), machine_busy()))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


def _token_phase(samples: list[Sample], results: list[sse_load.ReaderResult]) -> dict[str, Any]:
    """CPU from the first live token's arrival to the last reader's end: the delivery work
    alone, without the wait before the first token."""
    first = min(r.first_live_at for r in results if r.first_live_at)
    start = max((s for s in samples if s[0] <= first), default=samples[0])
    end = samples[-1]
    seconds = end[0] - start[0]
    frames = sum(len(r.lateness) + 1 for r in results)  # live tokens and the end
    return {
        "token_phase_seconds": round(seconds, 2),
        "frames_per_s": round(frames / seconds, 1),
        "server_cpu_share": round((end[1] - start[1]) / seconds, 3),
        "client_cpu_share": round((end[2] - start[2]) / seconds, 3),
        "server_cpu_us_per_frame": round((end[1] - start[1]) / frames * 1e6, 1),
        "machine_busy_cores": round((end[4] - start[4]) / seconds, 2),
    }


async def _readers(
    server: ServerProcess, headers: dict[str, str], cfg: dict[str, int]
) -> dict[str, Any]:
    pid, address = server_pid(server), f"{HOST}:{server.port}"
    body = {"input": "Follow me.", "store": False, "on_disconnect": "continue"}
    start = sse_load.request_bytes("POST", "/v1/agents/chat/stream", address, headers, body)
    gate = asyncio.Semaphore(16)

    async def start_one() -> str:
        async with gate:
            return await sse_load.start_run(HOST, server.port, start)

    runs_started = time.monotonic()
    run_ids = await asyncio.gather(*(start_one() for _ in range(cfg["runs"])))
    started_in = time.monotonic() - runs_started
    await asyncio.sleep(0.2)  # the starters' connections are closed and forgotten
    rss_before = rss_kib(pid)
    results = [sse_load.ReaderResult() for _ in range(cfg["runs"] * cfg["readers"])]
    attached = [asyncio.Event() for _ in results]
    handshakes = asyncio.Semaphore(cfg["attach_concurrency"])
    tasks = []
    for index, result in enumerate(results):
        run_id = run_ids[index % len(run_ids)]
        request = sse_load.request_bytes("GET", f"/v1/runs/{run_id}/events", address, headers, None)
        follow = sse_load.follow(
            HOST, server.port, request, result, gate=handshakes, attached=attached[index]
        )
        tasks.append(asyncio.create_task(follow))
    waiting = [asyncio.create_task(event.wait()) for event in attached]
    done, _ = await asyncio.wait(waiting, timeout=60)
    attach_seconds = time.monotonic() - runs_started
    if len(done) != len(waiting):
        raise BenchError(f"only {len(done)} of {len(waiting)} readers attached in 60 s")
    refused = [r.error for r in results if r.error is not None]
    if refused:
        raise BenchError(f"{len(refused)} readers could not attach, first: {refused[0]}")
    rss_open = rss_kib(pid)
    gc_before = await asyncio.to_thread(gc_collections, server.url)
    samples: list[Sample] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(pid, samples, stop))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    stop.set()
    await sampler
    gc_after = await asyncio.to_thread(gc_collections, server.url)
    return {
        "results": results,
        "runs_started_in_s": round(started_in, 2),
        "all_attached_after_s": round(attach_seconds, 2),
        "rss_before_kib": rss_before,
        "rss_open_kib": rss_open,
        "rss_peak_kib": max(sample[3] for sample in samples),
        **_token_phase(samples, results),
        "gc_collections_while_streaming": {
            generation: count - gc_before.get(generation, 0)
            for generation, count in sorted(gc_after.items())
        },
    }


def _check_readers(results: list[sse_load.ReaderResult], tokens: int) -> None:
    problems = []
    for index, r in enumerate(results):
        if r.error is not None:
            problems.append(f"reader {index}: {r.error}")
        elif (
            not r.completed or r.token_frames != tokens or r.seqs != list(range(1, len(r.seqs) + 1))
        ):
            problems.append(f"reader {index}: {r.token_frames} tokens, ids {r.seqs[:3]}...")
    if problems:
        raise BenchError(f"{len(problems)} readers wrong, first: {problems[0]}")


def readers(base_env: dict[str, str], password: str) -> dict[str, Any]:
    """Part 2 on its own server, started from ``base_env`` (Redis, secrets, limits off)."""
    cfg = {
        "runs": _env_int("BENCH_RUNS", 100),
        "readers": _env_int("BENCH_READERS_PER_RUN", 10),
        "tokens": _env_int("BENCH_FOLLOW_TOKENS", 50),
        "latency_ms": _env_int("BENCH_FOLLOW_LATENCY_MS", 5000, minimum=0),
        "attach_concurrency": _env_int("BENCH_ATTACH_CONCURRENCY", 32),
    }
    env = {
        **base_env,
        "REDIS_KEY_PREFIX": "follow",
        "OFFLINE_LATENCY_MS": str(cfg["latency_ms"]),
        "OFFLINE_TOKENS_PER_SECOND": "10",
        "OFFLINE_RESPONSE_TOKENS": str(cfg["tokens"]),
    }
    server = _make_server(env)
    try:
        server.start()
        out = run_async(_readers(server, bench_headers(server, password), cfg))
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        server.log_path.unlink(missing_ok=True)
    results: list[sse_load.ReaderResult] = out.pop("results")
    _check_readers(results, cfg["tokens"])
    lateness = [s * 1000 for r in results for s in r.lateness]
    if not lateness:
        raise BenchError("no live token frame was timed")
    count = len(results)
    return {
        "config": {
            **cfg,
            "route": "GET /v1/runs/{id}/events, runs started by POST .../stream (continue)",
            "model": f"offline, {cfg['tokens']} tokens at 10/s after {cfg['latency_ms']} ms",
        },
        "readers": count,
        **out,
        "first_token_before_all_attached": out["all_attached_after_s"] * 1000 > cfg["latency_ms"],
        "rss_per_reader_kib": round((out["rss_open_kib"] - out["rss_before_kib"]) / count, 2),
        "rss_peak_per_reader_kib": round((out["rss_peak_kib"] - out["rss_before_kib"]) / count, 2),
        "lateness_ms": {
            "samples": len(lateness),
            "p50": round(percentile(lateness, 50), 2),
            "p90": round(percentile(lateness, 90), 2),
            "p99": round(percentile(lateness, 99), 2),
            "max": round(max(lateness), 2),
        },
    }

"""What the run log costs on the streaming path, and how 1,000 readers of 100 runs fare.

Run with ``make bench`` (or ``python -m bench.run_log`` from the repo root).

Setup: a private redis-server (REDIS_URL set, as in production), one uvicorn worker per
server (``app.entrypoints.cli serve``, not pinned to a core, as the other benches), rate
limit, per-principal run cap and connection cap off, access log off, LOG_LEVEL=WARNING, the
embedded task worker off. Requests carry a JWT and ``Cache-Control: no-cache`` (the LLM
cache is bypassed: every run calls the model). The load generator is one asyncio process
(uvloop) on raw sockets (bench/sse_load.py), on the same 2-core machine.

1. Log cost. Two servers, ``RUN_LOG_ENABLED=true`` and ``false`` (the run then keeps no
   record and writes no log), the offline model answering BENCH_TOKENS tokens with no
   latency and no pacing. BENCH_STREAMS kept-alive connections repeat the same
   ``POST /v1/agents/chat/stream`` (``"store": false``: no session, so the log is the only
   Redis work of the log-on run) for BENCH_SECONDS, rounds alternating on, off, on, off, ...
   Measured: streamed tokens/s, and the server's CPU seconds per token (user + system from
   /proc during the load). Ratios: median tokens/s on / off (target >= 0.80), and
   median CPU per token off / on (the throughput-equivalent; less noisy than tokens/s, but
   not immune: the 2 vCPUs are shared, so each round also reports how many cores the
   whole machine was busy, and more than server + client + Redis means someone else ran).
2. Readers. A third server, the offline model paced at 10 tokens/s, BENCH_FOLLOW_TOKENS
   tokens after a first-token delay of BENCH_FOLLOW_LATENCY_MS (time for every reader to
   attach before the first token). BENCH_RUNS runs are started with ``"on_disconnect":
   "continue"`` (the starter keeps only the X-Run-ID header and hangs up), then
   BENCH_READERS_PER_RUN readers per run follow ``GET /v1/runs/{id}/events``. Measured:
   server RSS growth per reader (VmRSS with every reader attached minus before any, over
   the reader count; the peak during streaming too), and each live token frame's arrival
   time at its reader minus the event's ``ts`` (stamped by the server when the run
   publishes; same clock): p50/p99 (target p99 < 20 ms). Every reader must get every event
   once, in order, and the end. Reported for the token phase (first live token to the last
   reader's end): frames/s, server and client CPU (a client near 100 % would put its own
   queueing into the lateness), server CPU per frame, and the server's garbage collections
   by generation (GET /metrics): a full collection pauses every stream at once, so p99
   depends on whether one falls inside the phase.

Knobs (defaults): part 1 BENCH_SECONDS (8), BENCH_ROUNDS (3: one odd round of a noisy
machine is outvoted), BENCH_STREAMS (32), BENCH_TOKENS (64), BENCH_WARMUP_SECONDS (2),
BENCH_STORE (unset; 1 = the default body, a new session per run); part 2 BENCH_RUNS (100),
BENCH_READERS_PER_RUN (10), BENCH_FOLLOW_TOKENS (50), BENCH_FOLLOW_LATENCY_MS (5000),
BENCH_ATTACH_CONCURRENCY (32 handshakes in flight at once: readers arrive over about a
second rather than as one burst).
Results: bench/results/run_log.json and .md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import sse_load
from bench.middleware_overhead import (
    BenchError,
    _common_env,
    _env_int,
    _git,
    _make_server,
    machine_info,
)
from bench.result_files import save_results
from bench.run_log_readers import (
    HOST,
    bench_headers,
    machine_busy,
    readers,
    run_async,
    server_pid,
)
from bench.security_overhead import cpu_seconds
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

RESULT_NAME = "run_log"
TARGET_RATIO = 0.80
TARGET_P99_MS = 20.0
CONFIGS = ("log_on", "log_off")

BASE_ENV = {
    "RATE_LIMIT_ENABLED": "false",
    "MAX_CONCURRENT_RUNS_PER_PRINCIPAL": "0",
    "SERVER_LIMIT_CONCURRENCY": "0",  # 1,000 readers are more than the default cap
    "ACCESS_LOG_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
    "WORKER_ENABLED": "false",
    "OFFLINE_LATENCY_MS": "0",
    "OFFLINE_TOKENS_PER_SECOND": "0",
}


# --- 1. the log's cost on the streaming path -----------------------------------------------


def _stream_body() -> dict[str, object]:
    # Stateless by default: a session's own Redis writes would hide part of the log's cost.
    return {"input": "Tell me about the run log.", "store": os.environ.get("BENCH_STORE") == "1"}


def _stream_request(server: ServerProcess, headers: dict[str, str]) -> bytes:
    body = _stream_body()
    return sse_load.request_bytes(
        "POST", "/v1/agents/chat/stream", f"{HOST}:{server.port}", headers, body
    )


def _precheck(name: str, server: ServerProcess, headers: dict[str, str], tokens: int) -> None:
    """One stream by hand: it completes with the configured tokens, and the run is logged
    exactly when the setting says so."""
    with httpx.stream(
        "POST",
        f"{server.url}/v1/agents/chat/stream",
        json=_stream_body(),
        headers=headers,
        timeout=30,
    ) as response:
        text = response.read().decode()
        run_id = response.headers.get("x-run-id", "")
    count = text.count("event: token\n")
    if response.status_code != 200 or count != tokens or "event: run_completed" not in text:
        raise BenchError(f"{name}: stream answered {response.status_code}, {count} tokens")
    record = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=headers, timeout=10)
    expected = 200 if name == "log_on" else 404
    if record.status_code != expected:
        raise BenchError(f"{name}: GET /v1/runs/{{id}} answered {record.status_code}")


async def _stream_load(port: int, request: bytes, seconds: float, streams: int) -> dict[str, Any]:
    tally = sse_load.StreamTally()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(sse_load.stream_loop(HOST, port, request, deadline, tally) for _ in range(streams))
    )
    elapsed = time.monotonic() - started
    if tally.failures:
        raise BenchError(f"{len(tally.failures)} streams failed, first: {tally.failures[0]}")
    return {"streams": tally.streams, "tokens": tally.tokens, "seconds": elapsed}


def measure_stream(
    server: ServerProcess, request: bytes, seconds: float, streams: int
) -> dict[str, Any]:
    pid = server_pid(server)
    cpu_before, client_before, busy = cpu_seconds(pid), time.process_time(), machine_busy()
    done = run_async(_stream_load(server.port, request, seconds, streams))
    server_cpu, client_cpu = cpu_seconds(pid) - cpu_before, time.process_time() - client_before
    busy = machine_busy() - busy
    return {
        "tokens_per_s": round(done["tokens"] / done["seconds"], 1),
        "streams_per_s": round(done["streams"] / done["seconds"], 1),
        "server_cpu_us_per_token": round(server_cpu / max(done["tokens"], 1) * 1e6, 2),
        "server_cpu_share": round(server_cpu / done["seconds"], 3),
        "client_cpu_share": round(client_cpu / done["seconds"], 3),
        "machine_busy_cores": round(busy / done["seconds"], 2),
        **done,
    }


def log_cost(base_env: dict[str, str], password: str) -> dict[str, Any]:
    seconds = _env_int("BENCH_SECONDS", 8)
    rounds = _env_int("BENCH_ROUNDS", 3)
    streams = _env_int("BENCH_STREAMS", 32)
    tokens = _env_int("BENCH_TOKENS", 64)
    warmup = _env_int("BENCH_WARMUP_SECONDS", 2, minimum=0)
    env = {**base_env, "OFFLINE_RESPONSE_TOKENS": str(tokens)}
    servers = {
        name: _make_server(
            {**env, "RUN_LOG_ENABLED": str(name == "log_on").lower(), "REDIS_KEY_PREFIX": name}
        )
        for name in CONFIGS
    }
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    try:
        requests = {}
        for name, server in servers.items():
            server.start()
            headers = bench_headers(server, password)
            _precheck(name, server, headers, tokens)
            requests[name] = _stream_request(server, headers)
            if warmup:
                measure_stream(server, requests[name], warmup, streams)
        for index in range(1, rounds + 1):
            for name in CONFIGS:  # A B A B: a noisy machine's drift hits both alike
                m = measure_stream(servers[name], requests[name], seconds, streams)
                measured[name].append(m)
                print(
                    f"round {index} {name:<8} {m['tokens_per_s']:9.1f} tokens/s  "
                    f"{m['streams_per_s']:7.1f} streams/s  server CPU "
                    f"{m['server_cpu_us_per_token']:6.2f} us/token "
                    f"({m['server_cpu_share']:.0%} of a core; client {m['client_cpu_share']:.0%}; "
                    f"machine {m['machine_busy_cores']:.2f} cores busy)",
                    flush=True,
                )
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                server.stop()
            server.log_path.unlink(missing_ok=True)
    medians = {
        name: {
            key: round(statistics.median(m[key] for m in measured[name]), 2)
            for key in (
                "tokens_per_s",
                "server_cpu_us_per_token",
                "server_cpu_share",
                "machine_busy_cores",
            )
        }
        for name in CONFIGS
    }
    on, off = medians["log_on"], medians["log_off"]
    return {
        "config": {
            "route": f"POST /v1/agents/chat/stream, store {str(_stream_body()['store']).lower()}, "
            "Cache-Control: no-cache",
            "model": f"offline, {tokens} tokens, latency 0, unpaced",
            "streams": streams,
            "seconds": seconds,
            "rounds": rounds,
            "order": "log_on, log_off alternating",
        },
        "rounds": measured,
        "medians": medians,
        "ratio_tokens_per_s": round(on["tokens_per_s"] / off["tokens_per_s"], 4),
        "ratio_cpu_per_token": round(
            off["server_cpu_us_per_token"] / on["server_cpu_us_per_token"], 4
        ),
    }


# --- report ---------------------------------------------------------------------------------


def render_markdown(result: dict[str, Any]) -> str:
    cost, follow = result["log_cost"], result["readers"]
    on, off = cost["medians"]["log_on"], cost["medians"]["log_off"]
    late = follow["lateness_ms"]
    machine = result["machine"]
    ratio_met = "met" if result["targets"]["log_ratio_met"] else "NOT met"
    late_met = "met" if result["targets"]["lateness_met"] else "NOT met"
    lines = [
        f"# Run log cost and 1,000 readers ({result['date']}, `{result['command']}`)",
        "",
        f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}; commit "
        f"{result['git'][:12]}. One uvicorn worker per server, not pinned; private redis-server; "
        "client: one asyncio process, raw sockets (bench/sse_load.py).",
        "",
        f"## Log on vs off: {cost['config']['route']}",
        "",
        f"{cost['config']['model']}; {cost['config']['streams']} concurrent streams, "
        f"{cost['config']['seconds']} s x {cost['config']['rounds']} rounds each, "
        f"{cost['config']['order']}; medians.",
        "",
        "| RUN_LOG_ENABLED | tokens/s | server CPU us/token | server CPU share | machine busy |",
        "|---|---|---|---|---|",
        f"| true | {on['tokens_per_s']:.0f} | {on['server_cpu_us_per_token']:.2f} | "
        f"{on['server_cpu_share']:.0%} | {on['machine_busy_cores']:.2f} cores |",
        f"| false | {off['tokens_per_s']:.0f} | {off['server_cpu_us_per_token']:.2f} | "
        f"{off['server_cpu_share']:.0%} | {off['machine_busy_cores']:.2f} cores |",
        "",
        f"tokens/s on / off: **{cost['ratio_tokens_per_s']:.1%}** (target >= "
        f"{TARGET_RATIO:.0%}: {ratio_met}); CPU per token off / on: "
        f"{cost['ratio_cpu_per_token']:.1%}.",
        "",
        f"## {follow['readers']} SSE readers of {follow['config']['runs']} runs",
        "",
        f"{follow['config']['model']}; {follow['config']['readers']} readers per run on "
        f"{follow['config']['route']}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| server RSS before readers / all attached / peak | {follow['rss_before_kib'] / 1024:.1f}"
        f" / {follow['rss_open_kib'] / 1024:.1f} / {follow['rss_peak_kib'] / 1024:.1f} MiB |",
        f"| RSS per reader (attached / peak) | {follow['rss_per_reader_kib']:.1f} / "
        f"{follow['rss_peak_per_reader_kib']:.1f} KiB |",
        f"| token lateness p50 / p90 / p99 / max ({late['samples']} frames) | "
        f"{late['p50']} / {late['p90']} / **{late['p99']}** / {late['max']} ms |",
        f"| frames delivered while tokens flow | {follow['frames_per_s']:.0f} /s over "
        f"{follow['token_phase_seconds']} s |",
        f"| server CPU / client CPU then | {follow['server_cpu_share']:.0%} / "
        f"{follow['client_cpu_share']:.0%} of a core; server "
        f"{follow['server_cpu_us_per_frame']:.0f} us per frame; machine "
        f"{follow['machine_busy_cores']:.2f} cores busy |",
        "| server garbage collections while streaming, by generation 0 / 1 / 2 | "
        + " / ".join(str(n) for n in follow["gc_collections_while_streaming"].values())
        + " |",
        f"| runs started in / all readers attached after | {follow['runs_started_in_s']} s / "
        f"{follow['all_attached_after_s']} s |",
        "",
        f"Lateness p99 target < {TARGET_P99_MS:.0f} ms: {late_met}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    password = secrets.token_urlsafe(18)
    redis = RedisServer()
    started_at = datetime.now(UTC)
    machine = machine_info()
    try:
        redis.start()
        base_env = {**_common_env(password), **BASE_ENV, "REDIS_URL": redis.url}
        cost = log_cost(base_env, password)
        follow = readers(base_env, password)
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        redis.close()
    result = {
        "benchmark": RESULT_NAME,
        "issue": "One run model (issue 10)",
        "command": "make bench  (python -m bench.run_log)",
        "date": started_at.isoformat(timespec="seconds"),
        "git": _git("rev-parse", "HEAD"),
        "machine": machine,
        "log_cost": cost,
        "readers": follow,
        "targets": {
            "log_ratio_min": TARGET_RATIO,
            "log_ratio_met": cost["ratio_tokens_per_s"] >= TARGET_RATIO,
            "lateness_p99_max_ms": TARGET_P99_MS,
            "lateness_met": follow["lateness_ms"]["p99"] < TARGET_P99_MS,
        },
    }
    markdown = render_markdown(result)
    save_results(RESULT_NAME, result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

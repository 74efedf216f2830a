"""OpenAI's Chat Completions stream against our native stream: the same run, two framings.

Run with ``make bench`` (or ``python -m bench.openai_compat`` from the repo root).

One server (``agent-service serve``, one uvicorn worker, production settings as
bench/agent_path.py: JWT auth, Redis rate limit too high to bite, metrics, JSON access log at
INFO to a file, run log on, a private redis-server), pinned to one core with ``taskset`` when
present (bench/agent_path_servers.py); the load generator (one asyncio process on raw sockets,
bench/sse_load.py) and redis-server on the other. Both rows start the same run: agent
``chat``, the offline model answering BENCH_TOKENS tokens with no latency and no pacing,
``Cache-Control: no-cache`` (every run calls the model), no session:

- native: ``POST /v1/agents/chat/stream`` ``{"input", "store": false}`` (``event: token``
  frames, ending ``event: run_completed``);
- openai: ``POST /v1/chat/completions`` ``{"model": "chat", "messages": [...], "stream":
  true, "stream_options": {"include_usage": true}}`` (``chat.completion.chunk`` frames,
  ending ``data: [DONE]``).

BENCH_STREAMS kept-alive connections repeat the row's request for BENCH_SECONDS; rounds
alternate native, openai, native, ... (a noisy machine's drift hits both alike), after a
warm-up of each. Measured: streamed tokens/s and the server's CPU seconds per token (from
/proc, far less sensitive than the rate to whoever else uses the machine). Ratio: median
tokens/s openai / native (target >= 0.90), and CPU per token native / openai.

Knobs (defaults): BENCH_SECONDS (4), BENCH_ROUNDS (3), BENCH_STREAMS (32), BENCH_TOKENS (64),
BENCH_WARMUP_SECONDS (1), BENCH_PIN (1; 0 = no pinning).
Results: bench/results/openai_compat.json and .md.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import sse_load
from bench.agent_path_servers import US_ENV, PinnedServer, Pinning
from bench.middleware_overhead import (
    BenchError,
    _common_env,
    _env_int,
    _git,
    _login,
    machine_info,
)
from bench.result_files import save_results
from bench.run_log_readers import machine_busy, run_async
from bench.security_overhead import cpu_seconds
from tests.support.redis_server import RedisServer

RESULT_NAME = "openai_compat"
TARGET_RATIO = 0.90
HOST = "127.0.0.1"
INPUT = "Describe the sea in one sentence."
ROWS = ("native", "openai")

# Frames that carry one token, and the last frame, of each framing.
_TOKEN_FRAME = {"native": b"event: token\n", "openai": b'"delta":{"content":'}
_LAST_FRAME = {"native": b"event: run_completed", "openai": b"data: [DONE]"}


def _path_and_body(row: str) -> tuple[str, dict[str, object]]:
    if row == "native":
        return "/v1/agents/chat/stream", {"input": INPUT, "store": False}
    return "/v1/chat/completions", {
        "model": "chat",
        "messages": [{"role": "user", "content": INPUT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _tokens(row: str, frames: list[bytes]) -> int:
    if row == "native":
        return sum(1 for frame in frames if frame.startswith(_TOKEN_FRAME["native"]))
    return sum(1 for frame in frames if _TOKEN_FRAME["openai"] in frame)


async def _stream_loop(
    row: str, port: int, request: bytes, deadline: float, tally: sse_load.StreamTally
) -> None:
    """sse_load.stream_loop for either framing: send, read the whole stream, repeat."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head, rest = await sse_load.read_head(reader)
            if head.status != 200:
                tally.failures.append(f"{head.status}: {rest[:200]!r}")
                return
            _, frames = await sse_load.read_body(reader, head, rest)
            if not frames or not frames[-1].startswith(_LAST_FRAME[row]):
                tally.failures.append(f"stream did not complete: {frames[-1:]!r}")
                return
            tally.streams += 1
            tally.tokens += _tokens(row, frames)
    finally:
        writer.close()


def measure(
    row: str, server: PinnedServer, request: bytes, seconds: float, streams: int
) -> dict[str, Any]:
    async def load() -> tuple[sse_load.StreamTally, float]:
        tally = sse_load.StreamTally()
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(_stream_loop(row, server.port, request, deadline, tally) for _ in range(streams))
        )
        return tally, time.monotonic() - started

    cpu_before, busy_before = cpu_seconds(server.pid), machine_busy()
    tally, elapsed = run_async(load())
    server_cpu, busy = cpu_seconds(server.pid) - cpu_before, machine_busy() - busy_before
    if tally.failures:
        raise BenchError(f"{row}: {len(tally.failures)} streams failed: {tally.failures[0]}")
    return {
        "tokens_per_s": round(tally.tokens / elapsed, 1),
        "streams_per_s": round(tally.streams / elapsed, 1),
        "server_cpu_us_per_token": round(server_cpu / max(tally.tokens, 1) * 1e6, 2),
        "server_cpu_share": round(server_cpu / elapsed, 3),
        "machine_busy_cores": round(busy / elapsed, 2),
        "streams": tally.streams,
        "tokens": tally.tokens,
        "seconds": round(elapsed, 2),
    }


def precheck(row: str, server: PinnedServer, headers: dict[str, str], tokens: int) -> None:
    """The row's request by hand: it completes with every token, and its run is recorded."""
    path, body = _path_and_body(row)
    answer = httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)
    frames = [f.encode() for f in answer.text.split("\n\n") if f]
    if answer.status_code != 200 or _tokens(row, frames) != tokens:
        raise BenchError(f"{row}: {answer.status_code}, {_tokens(row, frames)} token frames")
    record = httpx.get(
        f"{server.url}/v1/runs/{answer.headers['x-run-id']}", headers=headers, timeout=10
    )
    if record.status_code != 200 or record.json()["status"] != "completed":
        raise BenchError(f"{row}: run record {record.status_code} {record.text[:200]}")


def compare(env: dict[str, str], password: str, pinning: Pinning) -> dict[str, Any]:
    seconds = _env_int("BENCH_SECONDS", 4)
    rounds = _env_int("BENCH_ROUNDS", 3)
    streams = _env_int("BENCH_STREAMS", 32)
    tokens = _env_int("BENCH_TOKENS", 64)
    warmup = _env_int("BENCH_WARMUP_SECONDS", 1, minimum=0)
    server = PinnedServer({**env, "OFFLINE_RESPONSE_TOKENS": str(tokens)}, pinning)
    measured: dict[str, list[dict[str, Any]]] = {row: [] for row in ROWS}
    try:
        server.start()
        headers = {
            "Authorization": f"Bearer {_login(server.url, password)}",
            "Cache-Control": "no-cache",
        }
        requests = {}
        for row in ROWS:
            precheck(row, server, headers, tokens)
            path, body = _path_and_body(row)
            requests[row] = sse_load.request_bytes(
                "POST", path, f"{HOST}:{server.port}", headers, body
            )
            if warmup:
                measure(row, server, requests[row], warmup, streams)
        for index in range(1, rounds + 1):
            for row in ROWS:
                m = measure(row, server, requests[row], seconds, streams)
                measured[row].append(m)
                print(
                    f"round {index} {row:<7} {m['tokens_per_s']:9.1f} tokens/s  server CPU "
                    f"{m['server_cpu_us_per_token']:6.2f} us/token ({m['server_cpu_share']:.0%} "
                    f"of a core; machine {m['machine_busy_cores']:.2f} cores busy)",
                    flush=True,
                )
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)
    medians = {
        row: {
            key: round(statistics.median(m[key] for m in measured[row]), 2)
            for key in ("tokens_per_s", "server_cpu_us_per_token", "server_cpu_share")
        }
        for row in ROWS
    }
    native, ours = medians["native"], medians["openai"]
    return {
        "config": {
            "model": f"offline, {tokens} tokens, latency 0, unpaced, Cache-Control: no-cache",
            "streams": streams,
            "seconds": seconds,
            "rounds": rounds,
            "pinning": pinning.method,
        },
        "rounds": measured,
        "medians": medians,
        "ratio_tokens_per_s": round(ours["tokens_per_s"] / native["tokens_per_s"], 4),
        "ratio_cpu_per_token": round(
            native["server_cpu_us_per_token"] / ours["server_cpu_us_per_token"], 4
        ),
    }


def render_markdown(result: dict[str, Any]) -> str:
    cmp = result["compare"]
    native, ours = cmp["medians"]["native"], cmp["medians"]["openai"]
    met = "met" if result["target_met"] else "NOT met"
    machine = result["machine"]
    return "\n".join(
        [
            f"# OpenAI chat.completions stream vs native stream ({result['date']})",
            "",
            f"{machine['cpu_count']} CPUs ({machine['cpu_model']}); commit {result['git'][:12]}; "
            f"one uvicorn worker, pinning: {cmp['config']['pinning']}; private redis-server; "
            "client: one asyncio process, raw sockets.",
            "",
            f"{cmp['config']['model']}; {cmp['config']['streams']} concurrent streams, "
            f"{cmp['config']['seconds']} s x {cmp['config']['rounds']} rounds each, "
            "native and openai alternating; medians.",
            "",
            "| route | tokens/s | server CPU us/token | server CPU share |",
            "|---|---|---|---|",
            f"| POST /v1/agents/chat/stream | {native['tokens_per_s']:.0f} | "
            f"{native['server_cpu_us_per_token']:.2f} | {native['server_cpu_share']:.0%} |",
            f"| POST /v1/chat/completions (stream, include_usage) | {ours['tokens_per_s']:.0f} | "
            f"{ours['server_cpu_us_per_token']:.2f} | {ours['server_cpu_share']:.0%} |",
            "",
            f"tokens/s openai / native: **{cmp['ratio_tokens_per_s']:.1%}** (target >= "
            f"{TARGET_RATIO:.0%}: {met}); CPU per token native / openai: "
            f"{cmp['ratio_cpu_per_token']:.1%}.",
            "",
        ]
    )


def main() -> int:
    password = secrets.token_urlsafe(18)
    pinning = Pinning.plan()
    pinning.pin_self()  # the load generator, and the redis-server it starts, off the server's core
    redis = RedisServer()
    started_at = datetime.now(UTC)
    try:
        redis.start()
        env = {
            **_common_env(password),
            **US_ENV,
            "REDIS_URL": redis.url,
            "WORKER_ENABLED": "false",
            "OFFLINE_LATENCY_MS": "0",
            "OFFLINE_TOKENS_PER_SECOND": "0",
        }
        cmp = compare(env, password, pinning)
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        redis.close()
    result = {
        "benchmark": RESULT_NAME,
        "command": "make bench  (python -m bench.openai_compat)",
        "date": started_at.isoformat(timespec="seconds"),
        "git": _git("rev-parse", "HEAD"),
        "machine": machine_info(),
        "compare": cmp,
        "target_ratio": TARGET_RATIO,
        "target_met": cmp["ratio_tokens_per_s"] >= TARGET_RATIO,
    }
    markdown = render_markdown(result)
    save_results(RESULT_NAME, result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

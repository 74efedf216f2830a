"""CPU per invoke and per streamed event on the agent path, in process: the regression guard.

Run with ``make bench`` (or ``python -m bench.agent_microbench``; about 20 s). No server, no
sockets, no HTTP client: a minimal ASGI caller drives ``create_app(settings)`` directly, so
what is measured is the app (every middleware, the run machinery, the offline model) and a
few microseconds of the caller, not a client library. Settings as in production but in
memory mode: JWT auth (a token signed in through the app before measuring), rate limit in
memory with a limit out of reach, run cap out of reach, metrics on, JSON access log at INFO
to a file, run log on, the offline model answering 64 tokens with no latency or pacing,
``"store": false``. The same caller drives bench/bare_app.py's app for the baseline.

Measured with ``time.process_time`` (this process's CPU, every thread: instruction counters
are not available on this VM), per request, MICRO_CONCURRENCY requests in flight:

- invoke_hit / invoke_bypass: ``POST /v1/agents/chat/invoke`` repeated (cache hit), and with
  ``Cache-Control: no-cache``.
- stream_hit: ``POST /v1/agents/chat/stream``, per stream and per token event (stream / 64).
- per-token marginal: stream_hit with 64 tokens minus a second app answering 8, over the 56
  extra token events: what one more event costs, without the run's fixed cost; the same for
  invoke_hit (invoke_hit_8_tokens).
- bare_invoke / bare_stream: the bare FastAPI app, the same bytes.

The figures are the best (lowest) of MICRO_ROUNDS rounds: on a shared machine other work
only ever adds CPU time (cache and core contention), so the minimum is the stable figure;
medians are recorded too.

Knobs: MICRO_REQUESTS (200 per measurement; the bare app runs 4x as many), MICRO_ROUNDS (5),
MICRO_CONCURRENCY (8), MICRO_ONLY (one case, e.g. stream_hit, to profile it with
``py-spy record -- python -m bench.agent_microbench``: figures printed, nothing written),
MICRO_REDIS_URL (with MICRO_ONLY: Redis stores instead of memory, to profile round trips).
Writes bench/results/agent_microbench.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from asgi_lifespan import LifespanManager

from bench.middleware_overhead import ROOT, _common_env, _git, machine_info

OUT = ROOT / "bench" / "results" / "agent_microbench.json"
TOKENS, FEW_TOKENS = 64, 8
BODY = json.dumps({"input": "Describe the sea in one sentence.", "store": False}).encode()
JSON = (b"content-type", b"application/json")
ASGIApp = Callable[..., Awaitable[None]]


async def call(app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    """One POST through the ASGI app: (status, response headers, body). ``receive`` gives the
    body once, then waits for the response to end and reports the client gone, as a server
    does (our SSE response listens for the disconnect while it streams)."""
    done = asyncio.Event()
    sent = False
    status, head, chunks = 0, [], []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, head
        if message["type"] == "http.response.start":
            status, head = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-length", str(len(body)).encode()), *headers]
        + ([] if any(name == b"content-type" for name, _ in headers) else [JSON]),
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    done.set()
    return status, dict(head), b"".join(chunks)


def _settings(password: str, tokens: int) -> Any:
    from app.core.config import Settings

    common = {k: v for k, v in _common_env(password).items() if k != "WORKERS"}
    return Settings(
        _env_file=None,
        **common,
        AUTH_ENABLED=True,
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_REQUESTS=100_000_000,
        # Children sharing one redis-server sign in many times a minute (not measured).
        RATE_LIMIT_ROUTES={"POST /v1/auth/token": "100000/minute"},
        MAX_CONCURRENT_RUNS_PER_PRINCIPAL=100_000,
        ENABLE_METRICS=True,
        ACCESS_LOG_ENABLED=True,
        REQUEST_CONTEXT_ENABLED=True,
        SECURITY_HEADERS_ENABLED=True,
        LOG_LEVEL="INFO",
        # MICRO_REDIS_URL: the same with Redis stores (to profile the round trips, not recorded).
        REDIS_URL=os.environ.get("MICRO_REDIS_URL") or None,
        WORKER_ENABLED=False,
        OFFLINE_LATENCY_MS=0,
        OFFLINE_TOKENS_PER_SECOND=0,
        OFFLINE_RESPONSE_TOKENS=tokens,
    )


async def _token(app: ASGIApp, password: str) -> list[tuple[bytes, bytes]]:
    form = f"username=admin&password={password}".encode()
    status, _, body = await call(
        app,
        "/v1/auth/token",
        [(b"content-type", b"application/x-www-form-urlencoded")],
        form,
    )
    if status != 200:
        raise RuntimeError(f"sign-in answered {status}: {body[:200]!r}")
    return [(b"authorization", b"Bearer " + json.loads(body)["access_token"].encode())]


def _check(name: str, kind: str, status: int, body: bytes, tokens: int, cached: bool) -> None:
    if status != 200:
        raise RuntimeError(f"{name}: {status} {body[:300]!r}")
    if kind == "stream":
        count = body.count(b"event: token\n")
        ok = count == tokens and f'"cached":{str(cached).lower()}'.encode() in body
    else:
        answer = json.loads(body)
        count = answer["usage"]["completion_tokens"]
        ok = count == tokens and answer["cached"] == cached
    if not ok:
        raise RuntimeError(f"{name}: {count} tokens, expected {tokens} and cached={cached}")


class Case:
    """One measured request shape: app, path, headers, and how to check its answer."""

    def __init__(
        self, name: str, app: ASGIApp, path: str, headers: Any, *, tokens: int, cached: bool
    ) -> None:
        self.name, self.app, self.path, self.headers = name, app, path, headers
        self.tokens, self.cached = tokens, cached
        self.kind = "stream" if path.endswith("stream") else "invoke"
        self.samples: list[float] = []
        self.response_bytes = 0

    async def prime(self) -> None:
        for _ in range(2):  # the first fills the cache
            status, _, body = await call(self.app, self.path, self.headers, BODY)
        _check(self.name, self.kind, status, body, self.tokens, self.cached)
        self.response_bytes = len(body)

    async def measure(self, count: int, concurrency: int) -> float:
        """CPU microseconds per request over ``count`` requests, after count / 5 unmeasured."""
        failures: list[int] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                status, _, _ = await call(self.app, self.path, self.headers, BODY)
                if status != 200:
                    failures.append(status)

        async def run(total: int) -> None:
            share = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
            await asyncio.gather(*(worker(n) for n in share))

        await run(max(count // 5, concurrency))
        cpu = time.process_time()
        await run(count)
        cpu = time.process_time() - cpu
        if failures:
            raise RuntimeError(f"{self.name}: statuses {sorted(set(failures))}")
        self.samples.append(cpu / count * 1e6)
        return self.samples[-1]


async def _run(password: str, count: int, rounds: int, concurrency: int) -> dict[str, Any]:
    from app.entrypoints.server import settle_heap
    from app.main import create_app
    from bench import bare_app

    bypass = [(b"cache-control", b"no-cache")]
    async with contextlib.AsyncExitStack() as stack:
        ours = {}
        for tokens in (TOKENS, FEW_TOKENS):
            manager = LifespanManager(create_app(_settings(password, tokens)))
            ours[tokens] = (await stack.enter_async_context(manager)).app
        bare = (await stack.enter_async_context(LifespanManager(bare_app.app))).app
        auth = await _token(ours[TOKENS], password)
        auth_few = await _token(ours[FEW_TOKENS], password)
        path = "/v1/agents/chat/"
        app, few = ours[TOKENS], ours[FEW_TOKENS]
        cases = [
            Case("invoke_hit", app, path + "invoke", auth, tokens=TOKENS, cached=True),
            Case("invoke_bypass", app, path + "invoke", auth + bypass, tokens=TOKENS, cached=False),
            Case("invoke_hit_8_tokens", few, path + "invoke", auth_few, tokens=8, cached=True),
            Case("stream_hit", app, path + "stream", auth, tokens=TOKENS, cached=True),
            Case("stream_hit_8_tokens", few, path + "stream", auth_few, tokens=8, cached=True),
            Case("bare_invoke", bare, "/invoke", [], tokens=TOKENS, cached=False),
            Case("bare_stream", bare, "/stream", [], tokens=TOKENS, cached=False),
        ]
        if only := os.environ.get("MICRO_ONLY", "").strip():
            cases = [case for case in cases if case.name == only]
        for case in cases:
            await case.prime()
        settle_heap()  # what the server does once started
        for index in range(1, rounds + 1):
            for case in cases if index % 2 else cases[::-1]:
                n = count * 4 if case.name.startswith("bare") else count
                us = await case.measure(n, concurrency)
                print(
                    f"round {index} {case.name:<20} {us:8.1f} us CPU/request",
                    file=sys.__stdout__,
                    flush=True,
                )
    return {c.name: {"samples": c.samples, "response_bytes": c.response_bytes} for c in cases}


def summarise(measured: dict[str, Any], pick: Callable[[list[float]], float]) -> dict[str, float]:
    med = {name: pick(m["samples"]) for name, m in measured.items()}
    marginal = (med["stream_hit"] - med["stream_hit_8_tokens"]) / (TOKENS - FEW_TOKENS)
    invoke_marginal = (med["invoke_hit"] - med["invoke_hit_8_tokens"]) / (TOKENS - FEW_TOKENS)
    figures = {
        "us_per_invoke_cache_hit": med["invoke_hit"],
        "us_per_invoke_cache_bypass": med["invoke_bypass"],
        "us_per_stream_cache_hit": med["stream_hit"],
        "us_per_token_event_stream_hit": med["stream_hit"] / TOKENS,
        "us_per_extra_token_event": marginal,
        "us_per_run_fixed_stream": med["stream_hit"] - marginal * TOKENS,
        "us_per_extra_token_invoke": invoke_marginal,
        "us_per_run_fixed_invoke": med["invoke_hit"] - invoke_marginal * TOKENS,
        "bare_us_per_invoke": med["bare_invoke"],
        "bare_us_per_stream": med["bare_stream"],
        "bare_us_per_token_event": med["bare_stream"] / TOKENS,
    }
    figures["invoke_hit_vs_bare"] = med["invoke_hit"] / med["bare_invoke"]
    figures["stream_vs_bare"] = med["stream_hit"] / med["bare_stream"]
    return {k: round(v, 2) for k, v in figures.items()}


def main() -> int:
    count = int(os.environ.get("MICRO_REQUESTS", "200"))
    rounds = int(os.environ.get("MICRO_ROUNDS", "5"))
    concurrency = int(os.environ.get("MICRO_CONCURRENCY", "8"))
    machine = machine_info()
    started = datetime.now(UTC)
    password = secrets.token_urlsafe(18)
    real_stdout = sys.stdout
    # The app logs (JSON, INFO) to sys.stdout as configured at create_app: a file, as in prod.
    with tempfile.NamedTemporaryFile("w", prefix="agent-micro-", suffix=".log") as log:
        sys.stdout = log
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                measured = runner.run(_run(password, count, rounds, concurrency))
        except RuntimeError as exc:
            print(f"BENCH FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            sys.stdout = real_stdout
        log_bytes = Path(log.name).stat().st_size
    if os.environ.get("MICRO_ONLY", "").strip():
        print(json.dumps(measured))
        return 0
    figures = summarise(measured, min)
    result = {
        "benchmark": "agent_microbench",
        "issue": "11 (performance of the agent path)",
        "command": "make bench  (python -m bench.agent_microbench)",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "app_dirty": bool(_git("status", "--porcelain", "--", "app")),
        "machine": machine,
        "method": "in-process ASGI calls on uvloop, process CPU time (time.process_time) per "
        "request, best of rounds (figures) and median (figures_median); memory mode, JWT, "
        "rate limit + run cap out of reach, metrics, JSON access log at INFO to a file, "
        "offline model unpaced, store false",
        "config": {"requests": count, "rounds": rounds, "concurrency": concurrency},
        "log_bytes": log_bytes,
        "figures": figures,
        "figures_median": summarise(measured, statistics.median),
        "measured": measured,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| figure (best of rounds) | CPU us |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value} |")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

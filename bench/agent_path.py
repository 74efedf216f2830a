"""The agent path against a bare FastAPI app: the four scenarios of issue 11, in one run.

Run with ``make bench`` (or ``python -m bench.agent_path`` from the repo root).

Each scenario starts its servers with the same model timing: ours (``agent-service serve``,
one uvicorn worker, production settings: JWT auth, Redis rate limit with a limit too high to
bite, per-principal run cap on but out of reach, metrics on, JSON access log at INFO to a
file, run log on, a private redis-server) and bench/bare_app.py (no middleware, no auth, the
same 64 tokens as plain JSON and as plain SSE frames of the same shape), and the
comparators below. The servers share one core (``taskset``); the load generator (one
asyncio process on raw sockets, bench/agent_path_load.py) and redis-server share the
other. Rows alternate within a round (bare, us, ...) so a noisy machine's drift hits them
alike; each measurement follows a warm-up; medians over rounds. Alongside every rate: the
server's CPU per request and per token event from /proc, which depends far less than the
rate on whoever else uses the machine: that is the figure to read.

- S1 invoke, 64 connections, req/s: us with a cache hit (the same request repeated), with
  the cache bypassed (``Cache-Control: no-cache``), both ``"store": false``; and the session
  path (the default body: a new session per run, cache on).
- S2 SSE stream of 64 tokens, 64 connections, back to back: tokens/s, time to first token
  p50/p99 (request written to first token frame read), us with a cache hit, store false.
- S3 model latency 200 ms (OFFLINE_LATENCY_MS / the bare app's sleep), 256 connections,
  invoke, cache bypassed, store false: share of the ideal 256 / 0.2 s = 1,280 req/s.
- S4 1,000 streams opened together (32 handshakes in flight), the model paced at one token
  per 100 ms (64 tokens, 6.4 s) after a first-token delay of BENCH_S4_LATENCY_MS (8 s)
  on both servers, cache bypassed (a hit replays without pacing), store false. The delay
  is what makes the streams open at once: without it our server, delivering tokens while
  it opens streams, took longer to open 1,000 than one stream lasts. Lateness of the token
  frames sent while every stream is open (the window is reported): arrival minus the
  frame's ``ts`` (p50/p99), and arrival minus the pacing schedule (first token's ``ts`` +
  k x 100 ms: also counts the model's pacing slipping on a saturated loop); server RSS
  growth per open stream (every stream open, before the first token; and the peak). The
  warm-up opens 32 streams and hangs up after 3 tokens. One round by default: memory a
  first wave grew is reused by a second, so only the first says what a stream costs. No
  precheck by hand (too slow): every stream is checked (all tokens, run_completed).

The stacks a user would pick instead (issue 11), measured in the same run, on the same
core, with the same model timing (bench/bare_app.py's answer, latency and pacing, from the
same BARE_* environment), as rows of each scenario (bench/agent_path_comparators.py):

- the naive design (bench/naive_app.py): FastAPI, no middleware, the bearer JWT
  decoded with python-jose on every request, a redis.asyncio cache keyed on the request's
  fields; on the run's redis-server, its token minted here with its secret. Rows: S1
  ``naive_hit`` (the repeated request: a cache hit), S2 ``naive`` (its streams are not
  cached), S3 ``naive_bypass`` (``Cache-Control: no-cache``: the model runs, the answer is
  SET), S4 ``naive``.
- LangServe (bench/langserve_app.py): ``add_routes`` over a chat model streaming the same
  64 tokens; no cache exists there. Rows ``langserve`` in S1 (``/chat/invoke``), S2
  (``/chat/stream``: its ``event: data`` frames counted, TTFT at the first with text), S3
  and S4. LangServe 0.3.3 pins sse-starlette<2 (we run 3), so it runs in its own venv,
  .venv-langserve, made here when missing or when bench/langserve-requirements.txt changed
  (bench/comparator_envs.py; ``python -m bench.comparator_envs`` makes it ahead). If it
  cannot be made (no network), the LangServe rows are skipped: the reason is printed and
  recorded under ``comparators`` in agent_path.json.

Each comparator row of S1-S3 is prechecked by hand like ours (200, bare's whole answer; for
the naive design's cache-hit row, ``X-Cache: hit`` on the repeat). A comparator that fails
under load (say LangServe cannot keep 1,000 streams) is recorded with its row (``failures``)
rather than failing the run. The report adds a table of each comparator against bare, our
matching row beside it, and the S1 check "our ratio to bare at least 2x LangServe's". The S4
comparators add about 40 s to a run.

Knobs: BENCH_SCENARIOS (S1,S2,S3,S4), BENCH_SECONDS (5), BENCH_WARMUP_SECONDS (2),
BENCH_ROUNDS (2), BENCH_S4_STREAMS (1000), BENCH_S4_LATENCY_MS (8000), BENCH_S4_ROUNDS
(1), BENCH_PIN (1; 0 = no pinning), BENCH_COMPARATORS (naive,langserve; empty = none),
BENCH_S4_COMPARATORS (1; 0 = S4 without them). Results: bench/results/agent_path.json and
.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import agent_path_load as load
from bench import sse_load
from bench.agent_path_comparator_report import (
    comparator_checks,
    comparator_table,
    render_comparators,
)
from bench.agent_path_comparators import Comparators
from bench.agent_path_report import render_markdown, summary_table, write_results
from bench.agent_path_servers import (
    TOKENS,
    US_ENV,
    PinnedServer,
    Pinning,
    Row,
    login,
    model_env,
    precheck,
)
from bench.middleware_overhead import (
    BenchError,
    _common_env,
    _env_int,
    _git,
    counter_delta,
    machine_info,
    scrape_counters,
)
from bench.run_log_readers import run_async
from tests.support.redis_server import RedisServer

S3_LATENCY_MS = 200
S4_RATE = 10.0  # tokens per second per stream


def _row(key: str, label: str, server: str, kind: str, **kw: Any) -> Row:
    return Row(key, label, server, kind, **kw)


SCENARIOS: dict[str, dict[str, Any]] = {
    "S1": {
        "title": "S1 invoke, 64 connections",
        "timing": (0, 0.0, TOKENS),
        "connections": 64,
        "rows": [
            _row("bare", "bare FastAPI", "bare", "invoke"),
            _row("us_hit", "us, cache hit", "us", "invoke"),
            _row("us_hit_pooled", "us, cache hit, REDIS_MULTIPLEX=false", "us_pooled", "invoke"),
            _row("us_bypass", "us, cache bypassed", "us", "invoke", cache="bypass"),
            _row("us_session", "us, session path (default body)", "us", "invoke", store=True),
            _row("naive_hit", "naive design, cache hit", "naive", "invoke"),
            _row("langserve", "LangServe (no cache)", "langserve", "invoke", cache="none"),
        ],
    },
    "S2": {
        "title": "S2 SSE stream of 64 tokens, 64 connections",
        "timing": (0, 0.0, TOKENS),
        "connections": 64,
        "rows": [
            _row("bare", "bare FastAPI", "bare", "stream"),
            _row("us_hit", "us, cache hit", "us", "stream"),
            _row("naive", "naive design (streams uncached)", "naive", "stream", cache="none"),
            _row("langserve", "LangServe", "langserve", "stream", cache="none"),
        ],
    },
    "S3": {
        "title": "S3 model latency 200 ms, 256 connections, invoke",
        "timing": (S3_LATENCY_MS, 0.0, TOKENS),
        "connections": 256,
        "rows": [
            _row("bare", "bare FastAPI (200 ms sleep)", "bare", "invoke"),
            _row("us_bypass", "us, cache bypassed", "us", "invoke", cache="bypass"),
            _row(
                "us_bypass_pooled",
                "us, cache bypassed, REDIS_MULTIPLEX=false",
                "us_pooled",
                "invoke",
                cache="bypass",
            ),
            _row("naive_bypass", "naive design, cache bypassed", "naive", "invoke", cache="bypass"),
            _row("langserve", "LangServe (no cache)", "langserve", "invoke", cache="none"),
        ],
    },
    "S4": {
        "title": "S4 1,000 open streams, one token per 100 ms",
        "timing": (None, S4_RATE, TOKENS),  # latency: BENCH_S4_LATENCY_MS
        "rows": [
            _row("bare", "bare FastAPI (paced)", "bare", "stream"),
            _row("us_bypass", "us, cache bypassed", "us", "stream", cache="bypass"),
            _row("naive", "naive design (paced)", "naive", "stream", cache="none"),
            _row("langserve", "LangServe (paced)", "langserve", "stream", cache="none"),
        ],
    },
}

# Counters that mean the full chain did not do its full work (see middleware_overhead). A
# 401 or 429 already fails the load loop; a rate limiter failing open (Redis too slow under
# load) does not: it is recorded with the row and flagged in the report, not fatal, because
# it is a finding about the server under that load.
_BAD_COUNTERS = ("rate_limit_backend_errors_total", "auth_failures_total")


def _chain_problems(before: dict[Any, float], url: str) -> list[str]:
    delta = counter_delta(before, scrape_counters(url))
    return [
        f"{metric}{dict(labels)} +{value:g}"
        for (metric, labels), value in delta.items()
        if metric in _BAD_COUNTERS
    ]


def _flag(name: str, row: Row, measured: dict[str, Any], problems: list[str]) -> None:
    if problems:
        measured["chain_degraded"] = problems
        print(f"WARNING {name} {row.key}: " + "; ".join(problems), flush=True)


class ScenarioRun:
    """The servers for one scenario's model timing, and its rows measured on them."""

    def __init__(
        self,
        name: str,
        spec: dict[str, Any],
        env: dict[str, str],
        pinning: Pinning,
        comparators: Comparators,
    ) -> None:
        self.name, self.spec = name, spec
        self.comparators = comparators
        us_model, bare_model = model_env(*spec["timing"])
        self.tokens: int = spec["timing"][2]
        ours = {**env, **US_ENV, **us_model, "REDIS_KEY_PREFIX": name}
        self.rows: list[Row] = spec["rows"]
        self.servers = {
            "bare": PinnedServer(bare_model, pinning, module="bench.bare_app"),
            "us": PinnedServer(ours, pinning),
        }
        if any(row.server == "us_pooled" for row in self.rows):
            # The same server with redis-py's pooled connections: the shared connection's gain
            self.servers["us_pooled"] = PinnedServer({**ours, "REDIS_MULTIPLEX": "false"}, pinning)
        for other in dict.fromkeys(row.server for row in self.rows if row.comparator):
            self.servers[other] = comparators.server(other, bare_model, pinning, env["REDIS_URL"])
        self.samples: dict[str, list[dict[str, Any]]] = {row.key: [] for row in self.rows}
        self.failures: dict[str, list[str]] = {}  # comparator rows whose load failed
        self.checks: dict[str, Any] = {}
        self.requests: dict[str, bytes] = {}

    def start(self, password: str, *, check: bool = True) -> None:
        for server in self.servers.values():
            server.start()
        token = login(self.servers["us"], password)
        tokens = {"us": token, "us_pooled": token, "naive": self.comparators.naive_token()}
        for row in self.rows:
            server = self.servers[row.server]
            if check:
                self.checks[row.key] = precheck(row, server, tokens.get(row.server, ""))
            self.requests[row.key] = row.request(server, tokens.get(row.server, ""))

    def stop(self) -> None:
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                server.stop()
            server.log_path.unlink(missing_ok=True)

    def _measure(
        self, row: Row, seconds: float, connections: int, *, warm: bool = False
    ) -> dict[str, Any]:
        server = self.servers[row.server]
        loop: load.Loop = (
            load.invoke_loop
            if row.kind == "invoke"
            else functools.partial(load.stream_loop, frames=row.frames)
        )
        before = scrape_counters(server.url) if row.ours and not warm else None
        measured = run_async(
            load.measure(
                loop, server.pid, server.port, self.requests[row.key], seconds, connections
            )
        )
        if before is not None:
            _flag(self.name, row, measured, _chain_problems(before, server.url))
        return measured

    def _failed(self, row: Row, index: int, exc: Exception) -> bool:
        """A comparator that fails under load is a finding, kept with its row; ours or the
        bare app failing is the bench's failure. True when recorded."""
        if not row.comparator:
            return False
        self.failures.setdefault(row.key, []).append(f"round {index}: {exc}")
        self.samples[row.key].append({"error": str(exc)})
        print(f"{self.name} round {index} {row.key:<10} FAILED: {exc}", flush=True)
        return True

    def run_rounds(self, seconds: float, warmup: float, rounds: int) -> None:
        connections = self.spec["connections"]
        for index in range(1, rounds + 1):
            for row in self.rows:
                try:
                    if warmup:
                        self._measure(row, warmup, connections, warm=True)
                    m = self._measure(row, seconds, connections)
                except sse_load.LoadError as exc:
                    if self._failed(row, index, exc):
                        continue
                    raise
                self.samples[row.key].append(m)
                rate = (
                    f"{m['tokens_per_s']:9.0f} tokens/s  TTFT p99 {m['ttft_p99_ms']:6.1f} ms"
                    if "tokens_per_s" in m
                    else f"{m['requests_per_s']:8.0f} req/s  p99 {m['p99_ms']:7.1f} ms"
                )
                per = m.get("server_cpu_us_per_event")
                per_event = f" ({per:.1f} per token event)" if per is not None else ""
                print(
                    f"{self.name} round {index} {row.key:<10} {rate}  server CPU "
                    f"{m['server_cpu_us_per_request']:7.0f} us/request{per_event}, "
                    f"{m['server_cpu_share']:.0%} of a core; client {m['client_cpu_share']:.0%}",
                    flush=True,
                )

    def run_open_streams(self, streams: int, rounds: int) -> None:
        for index in range(1, rounds + 1):
            for row in self.rows:
                server = self.servers[row.server]
                request = self.requests[row.key]
                try:
                    if index == 1:  # first use of every path, before the RSS baseline
                        run_async(load.warm_streams(server.port, request, 32, row.frames))
                    before = scrape_counters(server.url) if row.ours else None
                    m = run_async(
                        load.open_streams(
                            server.pid,
                            server.port,
                            request,
                            streams,
                            self.tokens,
                            1 / S4_RATE,
                            row.frames,
                        )
                    )
                except sse_load.LoadError as exc:
                    if self._failed(row, index, exc):
                        continue
                    raise
                if before is not None:
                    _flag(self.name, row, m, _chain_problems(before, server.url))
                self.samples[row.key].append(m)
                print(
                    f"{self.name} round {index} {row.key:<10} lateness p50 "
                    f"{m['lateness_p50_ms']:7.1f} p99 {m['lateness_p99_ms']:7.1f} ms (vs "
                    f"schedule p99 {m['schedule_lateness_p99_ms']:.1f}) over "
                    f"{m['all_open_window_s']} s with all open; RSS "
                    f"+{m['rss_per_stream_kib']:.1f} KiB/stream (peak "
                    f"+{m['rss_peak_per_stream_kib']:.1f}); server CPU "
                    f"{m['server_cpu_us_per_event']:.0f} us/event, {m['server_cpu_share']:.0%}; "
                    f"all open after {m['all_open_after_s']} s, done after {m['seconds']} s",
                    flush=True,
                )

    def medians(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for key, all_samples in self.samples.items():
            samples = [s for s in all_samples if "error" not in s]
            if not samples:  # every round failed: see "failures"
                continue
            numeric = [k for k, v in samples[0].items() if isinstance(v, int | float)]
            out[key] = {k: round(statistics.median(s[k] for s in samples), 2) for k in numeric}
            if self.name == "S4":  # RSS growth: the first wave only (see the docstring)
                for k in ("rss_per_stream_kib", "rss_peak_per_stream_kib"):
                    out[key][k] = samples[0][k]
        return out


def _describe(row: Row) -> dict[str, Any]:
    return {
        "label": row.label,
        "server": row.server,
        "route": f"POST {row.path()}",
        "store": row.store,
        "cache": row.cache,
    }


def _selected() -> list[str]:
    raw = os.environ.get("BENCH_SCENARIOS", "").strip()
    names = [n.strip().upper() for n in raw.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise BenchError(f"BENCH_SCENARIOS: unknown {unknown}; choose from {list(SCENARIOS)}")
    return names


def _rows(name: str, spec: dict[str, Any], comparators: Comparators, s4_too: bool) -> list[Row]:
    """The scenario's rows less those of comparators not measured in this run."""
    measured = comparators.measured if (name != "S4" or s4_too) else []
    return [row for row in spec["rows"] if not row.comparator or row.server in measured]


def run() -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "seconds": _env_int("BENCH_SECONDS", 5),
        "warmup_seconds": _env_int("BENCH_WARMUP_SECONDS", 2, minimum=0),
        "rounds": _env_int("BENCH_ROUNDS", 2),
        "s4_streams": _env_int("BENCH_S4_STREAMS", 1000),
        "s4_latency_ms": _env_int("BENCH_S4_LATENCY_MS", 8000, minimum=0),
        "s4_rounds": _env_int("BENCH_S4_ROUNDS", 1),
        "s4_comparators": _env_int("BENCH_S4_COMPARATORS", 1, minimum=0) > 0,
    }
    names = _selected()
    comparators = Comparators.plan()  # may make LangServe's venv: before any pinning
    cfg["comparators"] = comparators.measured
    machine = machine_info()
    pinning = Pinning.plan()
    pinning.pin_self()  # before redis-server starts: it inherits the client's core
    password = secrets.token_urlsafe(18)
    common = _common_env(password)
    redis = RedisServer()
    started = datetime.now(UTC)
    print(f"scenarios {names}, {cfg}, pinning {pinning}", flush=True)
    scenarios: dict[str, Any] = {}
    try:
        redis.start()
        for name in names:
            spec = SCENARIOS[name]
            spec = {**spec, "rows": _rows(name, spec, comparators, cfg["s4_comparators"])}
            if spec["timing"][0] is None:
                spec = {**spec, "timing": (cfg["s4_latency_ms"], *spec["timing"][1:])}
            env = {**common, "REDIS_URL": redis.url}
            scenario = ScenarioRun(name, spec, env, pinning, comparators)
            try:
                scenario.start(password, check=name != "S4")
                if name == "S4":
                    scenario.run_open_streams(cfg["s4_streams"], cfg["s4_rounds"])
                else:
                    scenario.run_rounds(cfg["seconds"], cfg["warmup_seconds"], cfg["rounds"])
            finally:
                scenario.stop()
            latency, rate, tokens = spec["timing"]
            scenarios[name] = {
                "title": spec["title"],
                "connections": spec.get("connections", cfg["s4_streams"]),
                "model": {"latency_ms": latency, "tokens_per_second": rate, "tokens": tokens},
                "rows": {row.key: _describe(row) for row in spec["rows"]},
                "checks": scenario.checks,
                "samples": scenario.samples,
                "medians": scenario.medians(),
                "failures": scenario.failures,
            }
    finally:
        redis.close()
    app_changes = _git("status", "--porcelain", "--", "app")
    return {
        "benchmark": "agent_path",
        "issue": "11 (performance of the agent path)",
        "command": "make bench  (python -m bench.agent_path)",
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": {"commit": _git("rev-parse", "HEAD"), "app_dirty": bool(app_changes)},
        "machine": {**machine, "loadavg_at_end": list(os.getloadavg())},
        "pinning": {
            "server_cpu": pinning.server_cpu,
            "client_and_redis_cpu": pinning.client_cpu,
            "method": pinning.method,
        },
        "config": cfg,
        "us_env": {k: v for k, v in US_ENV.items()},
        "comparators": comparators.summary(),
        "scenarios": scenarios,
    }


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def render_report(result: dict[str, Any]) -> str:
    """The markdown report: ours against bare, then the comparators."""
    return render_markdown(result, more=render_comparators(result))


def main(render: Callable[[dict[str, Any]], str] = render_report) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run()
    except (BenchError, sse_load.LoadError) as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    result["table"] = summary_table(result)
    result["comparator_table"] = comparator_table(result)
    result["comparator_checks"] = comparator_checks(result)
    paths = write_results(result, render(result))
    print()
    print(render(result))
    print("wrote " + " and ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

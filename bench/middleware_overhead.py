"""Middleware overhead: the same route with every middleware off, then with the full chain on.

Run with ``make bench`` (or ``python -m bench.middleware_overhead`` from the repo root).

Scenarios, all against ``GET /v1/auth/me`` on one uvicorn worker (``app.entrypoints.cli serve``):

- ``bare``: every middleware switched off (AUTH_ENABLED=false answers the anonymous
  principal), LOG_LEVEL=WARNING.
- ``full_jwt``: request context + access log + metrics + security headers + body limit +
  auth + Redis rate limit (a private redis-server started here), LOG_LEVEL=INFO with the
  access log written to a file; requests carry a JWT from ``POST /v1/auth/token``.
- ``full_api_key``: the same server, requests carry an ``X-API-Key`` created with
  ``POST /v1/auth/api-keys`` (one more Redis lookup per request).

The load generator is ``wrk`` when it is on PATH, else a small keep-alive asyncio client on
httpx (fixed concurrency, fixed duration). Each measurement is preceded by a warm-up.
Rounds alternate bare, full_jwt, full_api_key so slow drift of a noisy machine hits all
scenarios alike; the ratio is median(full) / median(bare) from the same invocation.

Every measured response must be 200: wrk's "Non-2xx or 3xx responses" and socket errors
must be zero, and for the full chain the server's own ``http_requests_total`` counter
(by status) is compared before and after each run, which also catches 3xx. The rate
limiter failing open (Redis errors) or auth failures during a run also fail the bench,
because the full chain would then not have done its full work.

Environment knobs: BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_CONNECTIONS (32),
BENCH_WARMUP_SECONDS (2), BENCH_THREADS (wrk threads, 1), BENCH_TOOL (auto|wrk|httpx).
Results: bench/results/middleware_overhead.json and .md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.core.config import Settings
from bench.result_files import save_results
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
RESULT_NAME = "middleware_overhead"
ROUTE = "/v1/auth/me"
TARGET_RATIO = 0.5
SCENARIOS = ("bare", "full_jwt", "full_api_key")
COMMAND = "make bench"

# Headers only the chain adds: present on every full response, absent on every bare one.
CHAIN_HEADERS = ("x-request-id", "x-content-type-options", "x-ratelimit-limit")

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "redis",
    "limits",
    "structlog",
    "prometheus-client",
    "python-jose",
    "httpx",
)


class BenchError(RuntimeError):
    """The benchmark cannot produce a trustworthy number; the message says why."""


# --- configuration ----------------------------------------------------------------------------


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BenchError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BenchError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Config:
    seconds: int
    warmup_seconds: int
    rounds: int
    connections: int
    threads: int
    tool: str

    @classmethod
    def from_env(cls) -> Config:
        tool = os.environ.get("BENCH_TOOL", "auto").strip().lower() or "auto"
        if tool not in ("auto", "wrk", "httpx"):
            raise BenchError(f"BENCH_TOOL must be auto, wrk or httpx, got {tool!r}")
        if tool == "auto":
            tool = "wrk" if shutil.which("wrk") else "httpx"
        elif tool == "wrk" and not shutil.which("wrk"):
            raise BenchError("BENCH_TOOL=wrk but wrk is not on PATH (apt-get install wrk)")
        return cls(
            seconds=_env_int("BENCH_SECONDS", 10),
            warmup_seconds=_env_int("BENCH_WARMUP_SECONDS", 2, minimum=0),
            rounds=_env_int("BENCH_ROUNDS", 3),
            connections=_env_int("BENCH_CONNECTIONS", 32),
            threads=_env_int("BENCH_THREADS", 1),
            tool=tool,
        )


# --- server environments ----------------------------------------------------------------------

BARE_ENV = {
    "AUTH_ENABLED": "false",
    "RATE_LIMIT_ENABLED": "false",
    "ENABLE_METRICS": "false",
    "ACCESS_LOG_ENABLED": "false",
    "REQUEST_CONTEXT_ENABLED": "false",
    "SECURITY_HEADERS_ENABLED": "false",
    "MAX_REQUEST_BODY_BYTES": "0",
    "LOG_LEVEL": "WARNING",
}

FULL_ENV = {
    "AUTH_ENABLED": "true",
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_REQUESTS": "100000000",  # never reached: nothing may be answered 429
    "RATE_LIMIT_WINDOW": "60",
    "ENABLE_METRICS": "true",
    "ACCESS_LOG_ENABLED": "true",
    "REQUEST_CONTEXT_ENABLED": "true",
    "SECURITY_HEADERS_ENABLED": "true",
    "MAX_REQUEST_BODY_BYTES": "1048576",
    "LOG_LEVEL": "INFO",  # access log lines go to the server's log file (stdout redirected)
}


def _common_env(admin_password: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "development",
        "SECRET_KEY": secrets.token_hex(32),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": admin_password,
        "BCRYPT_ROUNDS": "4",
        "ACCESS_TOKEN_EXPIRE_MINUTES": "120",
        "LOG_FORMAT": "json",  # what production writes
        "CORS_ORIGINS": "",
        "WORKERS": "1",
    }


def _make_server(env: dict[str, str]) -> ServerProcess:
    server = ServerProcess(env=env)
    # ServerProcess starts from os.environ: drop any other setting the caller's shell carries,
    # so the two scenarios differ only in what is written above.
    for name in Settings.model_fields:
        if name not in env:
            server.env.pop(name, None)
    return server


# --- measurements -----------------------------------------------------------------------------


@dataclass(slots=True)
class Measurement:
    requests: int
    duration_s: float
    requests_per_sec: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    statuses: dict[str, int] = field(default_factory=dict)  # server-side count, when known
    checks: dict[str, Any] = field(default_factory=dict)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def _wrk_command(cfg: Config, url: str, headers: dict[str, str], seconds: int) -> list[str]:
    cmd = [
        "wrk",
        f"-t{cfg.threads}",
        f"-c{cfg.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    return cmd


def parse_wrk(output: str) -> Measurement:
    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"cannot parse wrk output (no {pattern!r}):\n{output}")
        return match

    rps = float(need(r"^Requests/sec:\s+([\d.]+)").group(1))
    total = need(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    percentiles: dict[str, float] = {}
    for pct in ("50", "75", "90", "99"):
        match = need(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        percentiles[pct] = _to_ms(match.group(1), match.group(2))
    latency = need(
        r"^\s+Latency\s+([\d.]+)(us|ms|s|m|h)\s+([\d.]+)(us|ms|s|m|h)\s+"
        r"([\d.]+)(us|ms|s|m|h)"
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if errors is not None:
        socket_errors = dict(zip(socket_errors, map(int, errors.groups()), strict=True))
    return Measurement(
        requests=int(total.group(1)),
        duration_s=_to_ms(total.group(2), total.group(3)) / 1000,
        requests_per_sec=rps,
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        max_ms=_to_ms(latency.group(5), latency.group(6)),
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(cfg: Config, url: str, headers: dict[str, str], seconds: int) -> Measurement:
    cmd = _wrk_command(cfg, url, headers, seconds)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _httpx_load(
    url: str, headers: dict[str, str], seconds: int, connections: int
) -> Measurement:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=5.0) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while True:
                began = time.perf_counter()
                if began >= deadline:
                    return
                try:
                    response = await client.get(url)
                except httpx.TimeoutException:
                    errors["timeout"] += 1
                    continue
                except httpx.ConnectError:
                    errors["connect"] += 1
                    continue
                except httpx.HTTPError:
                    errors["read"] += 1
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                statuses[response.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return Measurement(
        requests=len(latencies),
        duration_s=elapsed,
        requests_per_sec=len(latencies) / elapsed,
        p50_ms=_percentile(latencies, 50),
        p75_ms=_percentile(latencies, 75),
        p90_ms=_percentile(latencies, 90),
        p99_ms=_percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else 0.0,
        non_2xx_3xx=sum(n for code, n in statuses.items() if not 200 <= code < 400),
        socket_errors={k: errors[k] for k in ("connect", "read", "write", "timeout")},
        checks={"client_statuses": {str(code): n for code, n in sorted(statuses.items())}},
    )


def run_httpx(cfg: Config, url: str, headers: dict[str, str], seconds: int) -> Measurement:
    coro = _httpx_load(url, headers, seconds, cfg.connections)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def load(cfg: Config, url: str, headers: dict[str, str], seconds: int) -> Measurement:
    if cfg.tool == "wrk":
        return run_wrk(cfg, url, headers, seconds)
    return run_httpx(cfg, url, headers, seconds)


# --- server-side verification -----------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}\s+([0-9.eE+-]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape_counters(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every labelled sample of the counters the checks need, from GET /metrics."""
    wanted = (
        "http_requests_total",
        "rate_limit_backend_errors_total",
        "auth_failures_total",
        "rate_limit_rejections_total",
    )
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in response.text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in wanted:
            continue
        labels = tuple(sorted(_LABEL.findall(match.group(2))))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def counter_delta(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value - before.get(key, 0.0)
    }


def verify_server_counts(
    name: str,
    measured: Measurement,
    delta: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> None:
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    for (metric, labels), value in delta.items():
        label_map = dict(labels)
        if metric == "http_requests_total" and label_map.get("route") == ROUTE:
            statuses[label_map.get("status", "?")] += int(value)
        elif metric != "http_requests_total":
            problems.append(f"{metric}{label_map} +{value:g}")
    measured.statuses = dict(sorted(statuses.items()))
    measured.checks["server_counted_200"] = statuses.get("200", 0)
    others = {code: n for code, n in statuses.items() if code != "200"}
    if others:
        problems.append(f"non-200 responses counted by the server: {others}")
    if statuses.get("200", 0) < measured.requests:
        problems.append(
            f"server counted {statuses.get('200', 0)} x 200 but the client completed "
            f"{measured.requests} requests"
        )
    if problems:
        raise BenchError(f"{name}: " + "; ".join(problems))


def verify_client_counts(name: str, measured: Measurement) -> None:
    errors = {kind: n for kind, n in measured.socket_errors.items() if n}
    if measured.non_2xx_3xx or errors:
        raise BenchError(
            f"{name}: {measured.non_2xx_3xx} non-2xx/3xx responses, socket errors {errors}"
        )
    client_statuses = measured.checks.get("client_statuses")
    if client_statuses and set(client_statuses) != {"200"}:
        raise BenchError(f"{name}: statuses other than 200: {client_statuses}")
    if measured.requests == 0:
        raise BenchError(f"{name}: no request completed")


# --- scenarios --------------------------------------------------------------------------------


@dataclass(slots=True)
class Scenario:
    name: str
    server: ServerProcess
    headers: dict[str, str]
    expected_kind: str
    chain_on: bool

    @property
    def url(self) -> str:
        return f"{self.server.url}{ROUTE}"

    def precheck(self) -> None:
        """One request by hand: the right principal, and the chain visibly on or off."""
        response = httpx.get(self.url, headers=self.headers, timeout=10)
        if response.status_code != 200:
            raise BenchError(
                f"{self.name}: GET {ROUTE} answered {response.status_code}: {response.text[:300]}"
            )
        kind = response.json().get("kind")
        if kind != self.expected_kind:
            raise BenchError(
                f"{self.name}: principal kind {kind!r}, expected {self.expected_kind!r}"
            )
        present = [name for name in CHAIN_HEADERS if name in response.headers]
        if self.chain_on and len(present) != len(CHAIN_HEADERS):
            missing = sorted(set(CHAIN_HEADERS) - set(present))
            raise BenchError(f"{self.name}: the chain is not fully on, missing {missing}")
        if not self.chain_on and present:
            raise BenchError(f"{self.name}: the chain is not off, found headers {present}")

    def measure(self, cfg: Config) -> Measurement:
        self.precheck()
        if cfg.warmup_seconds:
            load(cfg, self.url, self.headers, cfg.warmup_seconds)
        before = scrape_counters(self.server.url) if self.chain_on else None
        measured = load(cfg, self.url, self.headers, cfg.seconds)
        verify_client_counts(self.name, measured)
        if before is not None:
            time.sleep(0.2)  # let the last in-flight requests reach the counters
            verify_server_counts(
                self.name, measured, counter_delta(before, scrape_counters(self.server.url))
            )
        return measured


def _login(base_url: str, password: str) -> str:
    response = httpx.post(
        f"{base_url}/v1/auth/token",
        data={"username": "admin", "password": password},
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchError(f"POST /v1/auth/token answered {response.status_code}: {response.text}")
    return str(response.json()["access_token"])


def _create_api_key(base_url: str, token: str) -> str:
    response = httpx.post(
        f"{base_url}/v1/auth/api-keys",
        json={"name": "bench", "scopes": ["agents:run"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if response.status_code != 201:
        raise BenchError(f"POST /v1/auth/api-keys answered {response.status_code}: {response.text}")
    return str(response.json()["key"])


# --- reporting --------------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _tool_version(tool: str) -> str:
    if tool == "httpx":
        return f"httpx {importlib.metadata.version('httpx')} (asyncio client, bench/)"
    done = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return (done.stdout + done.stderr).splitlines()[0].strip()


def _packages() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarise(
    rounds: list[dict[str, Measurement]], scenarios: tuple[str, ...] = SCENARIOS
) -> dict[str, dict[str, float]]:
    medians: dict[str, dict[str, float]] = {}
    for name in scenarios:
        runs = [r[name] for r in rounds]
        medians[name] = {
            "requests_per_sec": round(_median([m.requests_per_sec for m in runs]), 1),
            "p50_ms": round(_median([m.p50_ms for m in runs]), 3),
            "p99_ms": round(_median([m.p99_ms for m in runs]), 3),
            "min_requests_per_sec": round(min(m.requests_per_sec for m in runs), 1),
            "max_requests_per_sec": round(max(m.requests_per_sec for m in runs), 1),
        }
    return medians


def render_table(
    medians: dict[str, dict[str, float]],
    ratios: dict[str, float],
    rounds: list[dict[str, Measurement]],
) -> str:
    labels = {
        "bare": "bare (all middleware off)",
        "full_jwt": "full chain, JWT",
        "full_api_key": "full chain, API key",
    }
    head = ["scenario", "median req/s", "vs bare", "p50 ms", "p99 ms", "per-round req/s"]
    rows = []
    for name in SCENARIOS:
        ratio = 1.0 if name == "bare" else ratios[name]
        per_round = ", ".join(f"{r[name].requests_per_sec:.0f}" for r in rounds)
        rows.append(
            [
                labels[name],
                f"{medians[name]['requests_per_sec']:.0f}",
                f"{ratio:.1%}",
                f"{medians[name]['p50_ms']:.2f}",
                f"{medians[name]['p99_ms']:.2f}",
                per_round,
            ]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _redacted_command(cfg: Config, url: str, headers: dict[str, str]) -> str:
    safe = {name: ("Bearer <jwt>" if name == "Authorization" else "<api key>") for name in headers}
    if cfg.tool == "wrk":
        return shlex.join(_wrk_command(cfg, url, safe, cfg.seconds))
    return (
        f"httpx AsyncClient, {cfg.connections} keep-alive connections, "
        f"{cfg.seconds}s, GET {url} headers={sorted(safe)}"
    )


def write_results(result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    json_path, md_path = save_results(RESULT_NAME, result, markdown)
    return ROOT / json_path, ROOT / md_path


HTTPX_CAVEAT = (
    "The Python httpx client generated the load (wrk was not used): on a small machine "
    "it saturates before the server does, which compresses the ratio towards 100%. "
    "Install wrk (`make wrk`) for a meaningful number."
)


def render_markdown(result: dict[str, Any], table: str) -> str:
    cfg = result["config"]
    machine = result["machine"]
    ratios = result["ratios"]
    verdict = "met" if result["target"]["met"] else "NOT met"
    dirty = " + uncommitted changes in app/" if result["git"]["app_dirty"] else ""
    caveat = f"\n> {HTTPX_CAVEAT}\n" if result["tool"]["name"] == "httpx" else ""
    return f"""# Middleware overhead

Full chain (JWT) = **{ratios["full_jwt"]:.1%}** of bare throughput; full chain (API key) =
**{ratios["full_api_key"]:.1%}**. Target >= {TARGET_RATIO:.0%} (JWT path): **{verdict}**.
{caveat}
{table}

- Route: `GET {ROUTE}`, one uvicorn worker (`python -m app.entrypoints.cli serve`).
- bare: every middleware off. full: request context, access log (LOG_LEVEL=INFO, JSON to a
  file), metrics, security headers, body limit, auth, Redis rate limit (private redis-server).
- Load: **{result["tool"]["name"]}** ({result["tool"]["version"]}), {cfg["connections"]}
  connections, {cfg["threads"]} thread(s), {cfg["seconds"]} s per run after a
  {cfg["warmup_seconds"]} s warm-up; {cfg["rounds"]} rounds alternating bare, full JWT,
  full API key; medians per scenario, ratio = median(full) / median(bare).
- Every measured response was 200: client-side count, and for the full chain the server's own
  `http_requests_total` by status (no rate-limiter backend errors, no auth failures either).
- Machine: {machine["cpu_count"]} CPUs ({machine["cpu_model"]}), Python {machine["python"]},
  {machine["platform"]}; load average at start {machine["loadavg_at_start"][0]:.2f}.
- Code: commit `{result["git"]["commit"][:12]}`{dirty}; run {result["date"]}.

Numbers come from a small shared machine: compare ratios, not absolute req/s.

Reproduce (installs wrk and redis-server when it can):

```
{COMMAND}
```

Quick smoke run: `BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_WARMUP_SECONDS=1 {COMMAND}`.
Per-round numbers, latency percentiles and the exact load commands: `middleware_overhead.json`.
Where the time goes: `bench/README.md`.
"""


# --- main -------------------------------------------------------------------------------------


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(cfg: Config) -> tuple[dict[str, Any], list[dict[str, Measurement]]]:
    admin_password = secrets.token_urlsafe(18)
    common = _common_env(admin_password)
    redis = RedisServer()
    bare_server = _make_server({**common, **BARE_ENV})
    full_server = _make_server({**common, **FULL_ENV, "REDIS_URL": redis.url})
    started_at = datetime.now(UTC)
    machine = machine_info()
    rounds: list[dict[str, Measurement]] = []
    full_log_stats: dict[str, int] = {}
    try:
        redis.start()
        bare_server.start()
        full_server.start()
        token = _login(full_server.url, admin_password)
        api_key = _create_api_key(full_server.url, token)
        scenarios = {
            "bare": Scenario("bare", bare_server, {}, "anonymous", chain_on=False),
            "full_jwt": Scenario(
                "full_jwt", full_server, {"Authorization": f"Bearer {token}"}, "user", chain_on=True
            ),
            "full_api_key": Scenario(
                "full_api_key", full_server, {"X-API-Key": api_key}, "api_key", chain_on=True
            ),
        }
        print(
            f"tool={cfg.tool} seconds={cfg.seconds} warmup={cfg.warmup_seconds} "
            f"rounds={cfg.rounds} connections={cfg.connections}",
            flush=True,
        )
        for index in range(1, cfg.rounds + 1):
            current: dict[str, Measurement] = {}
            for name in SCENARIOS:
                measured = scenarios[name].measure(cfg)
                current[name] = measured
                print(
                    f"round {index} {name:<13} {measured.requests_per_sec:9.1f} req/s  "
                    f"p50 {measured.p50_ms:7.2f} ms  p99 {measured.p99_ms:7.2f} ms",
                    flush=True,
                )
            rounds.append(current)
        full_log = full_server.logs()
        full_log_stats = {
            "log_bytes": len(full_log.encode()),
            "access_log_lines": sum(
                1
                for line in full_log.splitlines()
                if '"event": "request"' in line and ROUTE in line
            ),
        }
        commands = {name: _redacted_command(cfg, s.url, s.headers) for name, s in scenarios.items()}
    finally:
        for server in (full_server, bare_server):
            with contextlib.suppress(Exception):
                server.stop()
            server.log_path.unlink(missing_ok=True)
        redis.close()

    total_full = sum(r["full_jwt"].requests + r["full_api_key"].requests for r in rounds)
    if full_log_stats.get("access_log_lines", 0) < total_full:
        raise BenchError(
            f"the full-chain server logged {full_log_stats.get('access_log_lines', 0)} access "
            f"lines for {total_full} measured requests: is the access log on?"
        )

    medians = summarise(rounds)
    bare_rps = medians["bare"]["requests_per_sec"]
    ratios = {
        name: round(medians[name]["requests_per_sec"] / bare_rps, 4)
        for name in ("full_jwt", "full_api_key")
    }
    per_round = []
    for index, current in enumerate(rounds, start=1):
        per_round.append(
            {
                "round": index,
                **{name: asdict(m) for name, m in current.items()},
                "ratio_full_jwt": round(
                    current["full_jwt"].requests_per_sec / current["bare"].requests_per_sec, 4
                ),
                "ratio_full_api_key": round(
                    current["full_api_key"].requests_per_sec / current["bare"].requests_per_sec, 4
                ),
            }
        )
    app_changes = _git("status", "--porcelain", "--", "app")
    result: dict[str, Any] = {
        "benchmark": RESULT_NAME,
        "issue": "Service foundation",
        "command": COMMAND,
        "date": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": {
            "commit": _git("rev-parse", "HEAD") or "unknown",
            "app_dirty": bool(app_changes),
            "app_changes": app_changes.splitlines(),
        },
        "machine": {**machine, "loadavg_at_end": list(os.getloadavg())},
        "packages": _packages(),
        "tool": {"name": cfg.tool, "version": _tool_version(cfg.tool), "commands": commands},
        "config": {
            "route": f"GET {ROUTE}",
            "server": "python -m app.entrypoints.cli serve (uvicorn, 1 worker)",
            "seconds": cfg.seconds,
            "warmup_seconds": cfg.warmup_seconds,
            "rounds": cfg.rounds,
            "connections": cfg.connections,
            "threads": cfg.threads,
            "order": list(SCENARIOS),
        },
        "scenarios": {
            "bare": {"env": BARE_ENV, "credentials": "none (anonymous principal)"},
            "full_jwt": {
                "env": {**FULL_ENV, "REDIS_URL": "redis://127.0.0.1:<private>/0"},
                "credentials": "Authorization: Bearer <JWT from POST /v1/auth/token>",
            },
            "full_api_key": {
                "env": "same server as full_jwt",
                "credentials": "X-API-Key <key from POST /v1/auth/api-keys>",
            },
            "common_env": {
                k: v for k, v in common.items() if k not in ("SECRET_KEY", "ADMIN_PASSWORD")
            },
        },
        "rounds": per_round,
        "medians": medians,
        "ratios": {
            "full_jwt": ratios["full_jwt"],
            "full_api_key": ratios["full_api_key"],
            "definition": "median(full req/s) / median(bare req/s)",
        },
        "target": {
            "min_ratio": TARGET_RATIO,
            "scenario": "full_jwt",
            "met": ratios["full_jwt"] >= TARGET_RATIO,
        },
        "caveat": HTTPX_CAVEAT if cfg.tool == "httpx" else None,
        "checks": {
            "all_measured_responses_200": True,
            "full_chain_server_log": full_log_stats,
        },
    }
    return result, rounds


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        cfg = Config.from_env()
        result, rounds = run(cfg)
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    table = render_table(result["medians"], result["ratios"], rounds)
    json_path, md_path = write_results(result, render_markdown(result, table))
    print()
    print(table)
    print()
    print(
        f"full chain (JWT) = {result['ratios']['full_jwt']:.1%} of bare, "
        f"full chain (API key) = {result['ratios']['full_api_key']:.1%} of bare "
        f"(target >= {TARGET_RATIO:.0%}: {'met' if result['target']['met'] else 'NOT met'}); "
        f"tool: {result['tool']['name']}"
    )
    if result["caveat"]:
        print(f"NOTE: {result['caveat']}")
    print(f"wrote {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

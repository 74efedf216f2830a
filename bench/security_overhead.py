"""What the security hardening costs per request: this tree against the tree before it.

Run with ``make bench`` (or ``python -m bench.security_overhead`` from the repo root).

The per-request user check (revocation), the per-IP failed-authentication limiter and the
server's transport limits run on every authenticated request. Both servers below run the
full chain (``FULL_ENV`` of ``bench.middleware_overhead``: JWT auth, Redis rate limit,
metrics, JSON access log) on one uvicorn worker against one private redis-server (separate
key prefixes), on ``GET /v1/auth/me`` with a JWT:

- ``baseline``: the app as of ``BENCH_BASELINE`` (default: the commit before the hardening),
  extracted with ``git archive`` into a temporary folder and started from there (the
  folder comes first on ``sys.path``, so its ``app`` package is the one imported);
- ``current``: this checkout.

Rounds alternate baseline, current, so the drift of a noisy machine hits both alike. Two
ratios from the same invocation: median(current req/s) / median(baseline req/s), and the
server's CPU time per request (user + system of the server process, from /proc, during the
measured load only), baseline / current. The second is the one to read on a shared machine:
req/s swings with whatever else runs, CPU per request barely does. Target: >= 0.90 (the
hardening costs at most 10 % of full-chain throughput). Every measured response must be
200 (the checks of ``bench.middleware_overhead`` apply).

Knobs: those of ``bench.middleware_overhead`` (BENCH_SECONDS, BENCH_ROUNDS, ...) and
BENCH_BASELINE. Results: bench/results/security_overhead.json and .md.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.middleware_overhead import (
    FULL_ENV,
    ROOT,
    BenchError,
    Config,
    Measurement,
    Scenario,
    _common_env,
    _git,
    _login,
    _make_server,
    load,
    machine_info,
    summarise,
    verify_client_counts,
)
from bench.result_files import save_results
from tests.support.redis_server import RedisServer

RESULT_NAME = "security_overhead"
DEFAULT_BASELINE = "c7b72fb"  # main before the security hardening (issue 9)
TARGET_RATIO = 0.90
SCENARIOS = ("baseline", "current")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def measure_with_cpu(scenario: Scenario, cfg: Config) -> tuple[Measurement, float]:
    """One measured load; also the server's CPU microseconds per request during it."""
    scenario.precheck()
    if cfg.warmup_seconds:
        load(cfg, scenario.url, scenario.headers, cfg.warmup_seconds)
    assert scenario.server.process is not None  # noqa: S101 - started above
    pid = scenario.server.process.pid
    before = cpu_seconds(pid)
    measured = load(cfg, scenario.url, scenario.headers, cfg.seconds)
    used = cpu_seconds(pid) - before
    verify_client_counts(scenario.name, measured)
    return measured, used / max(measured.requests, 1) * 1e6


def extract_tree(commit: str, into: Path) -> None:
    """The ``app`` package as of ``commit``, written under ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "app"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit} failed: {archive.stderr.decode()[:300]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def run(cfg: Config, baseline_commit: str) -> dict[str, Any]:
    admin_password = secrets.token_urlsafe(18)
    common = _common_env(admin_password)
    redis = RedisServer()
    baseline_dir = Path(tempfile.mkdtemp(prefix="agent-service-baseline-"))
    extract_tree(baseline_commit, baseline_dir)
    env = {**common, **FULL_ENV, "REDIS_URL": redis.url}
    baseline_server = _make_server({**env, "REDIS_KEY_PREFIX": "bench-baseline:"})
    baseline_server.cwd = baseline_dir  # `python -m` puts the cwd first on sys.path
    current_server = _make_server({**env, "REDIS_KEY_PREFIX": "bench-current:"})
    rounds: list[dict[str, Measurement]] = []
    cpu_us: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    started_at = datetime.now(UTC)
    try:
        redis.start()
        baseline_server.start()
        current_server.start()
        scenarios = {
            name: Scenario(
                name,
                server,
                {"Authorization": f"Bearer {_login(server.url, admin_password)}"},
                "user",
                chain_on=True,
            )
            for name, server in (("baseline", baseline_server), ("current", current_server))
        }
        print(f"baseline={baseline_commit} tool={cfg.tool} rounds={cfg.rounds}", flush=True)
        for index in range(1, cfg.rounds + 1):
            current: dict[str, Measurement] = {}
            for name in SCENARIOS:
                measured, per_request = measure_with_cpu(scenarios[name], cfg)
                current[name] = measured
                cpu_us[name].append(per_request)
                print(
                    f"round {index} {name:<9} {measured.requests_per_sec:9.1f} req/s  "
                    f"p50 {measured.p50_ms:7.2f} ms  p99 {measured.p99_ms:7.2f} ms  "
                    f"server CPU {per_request:6.1f} us/request",
                    flush=True,
                )
            rounds.append(current)
    finally:
        for server in (current_server, baseline_server):
            with contextlib.suppress(Exception):
                server.stop()
            server.log_path.unlink(missing_ok=True)
        redis.close()
    medians = summarise(rounds, SCENARIOS)
    ratio = round(
        medians["current"]["requests_per_sec"] / medians["baseline"]["requests_per_sec"], 4
    )
    cpu_medians = {name: round(statistics.median(values), 1) for name, values in cpu_us.items()}
    cpu_ratio = round(cpu_medians["baseline"] / cpu_medians["current"], 4)
    return {
        "benchmark": RESULT_NAME,
        "issue": "Security hardening",
        "command": "make bench",
        "date": started_at.isoformat(timespec="seconds"),
        "git": {"current": _git("rev-parse", "HEAD"), "baseline": baseline_commit},
        "machine": machine_info(),
        "config": {
            "route": "GET /v1/auth/me with a JWT",
            "server": "python -m app.entrypoints.cli serve (uvicorn, 1 worker), full chain",
            "seconds": cfg.seconds,
            "rounds": cfg.rounds,
            "connections": cfg.connections,
            "tool": cfg.tool,
        },
        "rounds": [{name: m.requests_per_sec for name, m in current.items()} for current in rounds],
        "medians": medians,
        "server_cpu_us_per_request": {"rounds": cpu_us, "medians": cpu_medians},
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "definition": {
            "ratio": "median(current req/s) / median(baseline req/s)",
            "cpu_ratio": "median(baseline CPU us/request) / median(current CPU us/request)",
        },
        "target": {"min_ratio": TARGET_RATIO, "met": cpu_ratio >= TARGET_RATIO},
    }


def render_markdown(result: dict[str, Any]) -> str:
    medians = result["medians"]
    lines = [
        f"# Security hardening overhead ({result['date']}, `{result['command']}`)",
        "",
        f"Full chain, {result['config']['route']}, one uvicorn worker, "
        f"{result['config']['tool']} {result['config']['seconds']} s x "
        f"{result['config']['rounds']} rounds, {result['config']['connections']} connections.",
        "",
        "| tree | median req/s | p50 ms | p99 ms | server CPU us/request |",
        "|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        m = medians[name]
        label = f"{name} ({result['git'][name][:12]})"
        cpu = result["server_cpu_us_per_request"]["medians"][name]
        lines.append(
            f"| {label} | {m['requests_per_sec']:.1f} | {m['p50_ms']:.2f} | "
            f"{m['p99_ms']:.2f} | {cpu:.1f} |"
        )
    met = "met" if result["target"]["met"] else "NOT met"
    lines += [
        "",
        f"Throughput-equivalent (CPU per request, baseline / current): {result['cpu_ratio']:.1%} "
        f"(target >= {TARGET_RATIO:.0%}: {met}); req/s current / baseline: "
        f"{result['ratio']:.1%} (noisy on a shared machine).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    try:
        cfg = Config.from_env()
        result = run(cfg, os.environ.get("BENCH_BASELINE", DEFAULT_BASELINE))
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    markdown = render_markdown(result)
    save_results(RESULT_NAME, result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

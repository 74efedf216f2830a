"""What each middleware costs on its own: the bare app plus one middleware at a time.

Run with ``python -m bench.ablate_middleware`` (wrk required). Same route, server and load
as ``bench.middleware_overhead``; each configuration is the bare environment with one switch
turned on (plus the full chain for reference). Reported per configuration: throughput and
the server's CPU time per request (utime + stime from /proc over the measured run, which is
less sensitive than req/s to other processes on a shared machine). The cost of a middleware
is its CPU/request minus the bare CPU/request; the costs should add up to roughly the full
chain's extra CPU/request.

Environment knobs: ABLATE_SECONDS (8), ABLATE_ROUNDS (4; order alternates forward/reverse),
ABLATE_ONLY (comma list of configuration names), BENCH_CONNECTIONS (32),
BENCH_WARMUP_SECONDS (2).
Writes bench/results/middleware_ablation.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.middleware_overhead import (
    BARE_ENV,
    FULL_ENV,
    ROUTE,
    BenchError,
    Config,
    _common_env,
    _create_api_key,
    _git,
    _login,
    _make_server,
    machine_info,
    run_wrk,
    verify_client_counts,
)
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "middleware_ablation.json"


@dataclass(slots=True)
class Variant:
    name: str
    description: str
    env: dict[str, str]
    credentials: str = "none"  # none | jwt | api_key
    redis: bool = False


VARIANTS = (
    Variant("bare", "all middleware off", {}),
    Variant("request_context", "+ RequestContext", {"REQUEST_CONTEXT_ENABLED": "true"}),
    Variant(
        "access_log",
        "+ AccessLog (LOG_LEVEL=INFO, JSON to a file)",
        {"ACCESS_LOG_ENABLED": "true", "LOG_LEVEL": "INFO"},
    ),
    Variant("metrics", "+ Metrics", {"ENABLE_METRICS": "true"}),
    Variant("security_headers", "+ SecurityHeaders", {"SECURITY_HEADERS_ENABLED": "true"}),
    Variant("body_limit", "+ BodySizeLimit", {"MAX_REQUEST_BODY_BYTES": "1048576"}),
    Variant("auth_jwt", "+ Authentication, JWT", {"AUTH_ENABLED": "true"}, "jwt"),
    Variant(
        "auth_api_key",
        "+ Authentication, API key (Redis lookup)",
        {"AUTH_ENABLED": "true"},
        "api_key",
        redis=True,
    ),
    Variant(
        "rate_limit_redis",
        "+ RateLimit on Redis (keyed by IP)",
        {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_REQUESTS": "100000000"},
        redis=True,
    ),
    Variant(
        "rate_limit_memory",
        "+ RateLimit in memory (no Redis)",
        {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_REQUESTS": "100000000"},
    ),
    Variant("full_jwt", "full chain, JWT (as in the overhead bench)", FULL_ENV, "jwt", True),
)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    os.environ.setdefault("BENCH_TOOL", "wrk")
    cfg = Config.from_env()
    if cfg.tool != "wrk":
        print("the ablation needs wrk", file=sys.stderr)
        return 1
    seconds = int(os.environ.get("ABLATE_SECONDS", "8"))
    rounds = int(os.environ.get("ABLATE_ROUNDS", "4"))
    only = {n.strip() for n in os.environ.get("ABLATE_ONLY", "").split(",") if n.strip()}
    variants = [v for v in VARIANTS if not only or v.name in only or v.name == "bare"]

    admin_password = secrets.token_urlsafe(18)
    common = _common_env(admin_password)
    redis = RedisServer()
    servers: dict[str, ServerProcess] = {}
    headers: dict[str, dict[str, str]] = {}
    samples: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    machine = machine_info()
    try:
        redis.start()
        for variant in variants:
            env = {**common, **BARE_ENV, **variant.env}
            if variant.redis:
                env["REDIS_URL"] = redis.url
            server = _make_server(env)
            servers[variant.name] = server.start()
            if variant.credentials == "none":
                headers[variant.name] = {}
                continue
            token = _login(server.url, admin_password)
            if variant.credentials == "jwt":
                headers[variant.name] = {"Authorization": f"Bearer {token}"}
            else:
                headers[variant.name] = {"X-API-Key": _create_api_key(server.url, token)}
        for index in range(1, rounds + 1):
            # Forward on odd rounds, reversed on even ones: linear drift of a shared machine
            # then hits every variant alike.
            for variant in variants if index % 2 else variants[::-1]:
                server = servers[variant.name]
                assert server.process is not None
                url = f"{server.url}{ROUTE}"
                if cfg.warmup_seconds:
                    run_wrk(cfg, url, headers[variant.name], cfg.warmup_seconds)
                before = _cpu_seconds(server.process.pid)
                measured = run_wrk(cfg, url, headers[variant.name], seconds)
                cpu = _cpu_seconds(server.process.pid) - before
                verify_client_counts(variant.name, measured)
                sample = {
                    "requests_per_sec": measured.requests_per_sec,
                    "cpu_us_per_request": cpu / measured.requests * 1e6,
                    "server_cpu_utilisation": cpu / measured.duration_s,
                    "p50_ms": measured.p50_ms,
                    "p99_ms": measured.p99_ms,
                }
                samples[variant.name].append(sample)
                print(
                    f"round {index} {variant.name:<18} {sample['requests_per_sec']:8.1f} req/s "
                    f"{sample['cpu_us_per_request']:7.1f} us CPU/request "
                    f"(server at {sample['server_cpu_utilisation']:.0%} of a core)",
                    flush=True,
                )
    except BenchError as exc:
        print(f"ABLATION FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                server.stop()
            server.log_path.unlink(missing_ok=True)
        redis.close()

    def med(name: str, key: str) -> float:
        return float(statistics.median(s[key] for s in samples[name]))

    bare_cpu = med("bare", "cpu_us_per_request")
    bare_rps = med("bare", "requests_per_sec")
    summary: dict[str, Any] = {}
    print(
        "\n| variant | median req/s | vs bare | CPU us/request | +us vs bare |\n"
        "|---|---|---|---|---|"
    )
    for variant in variants:
        cpu = med(variant.name, "cpu_us_per_request")
        rps = med(variant.name, "requests_per_sec")
        summary[variant.name] = {
            "description": variant.description,
            "requests_per_sec": round(rps, 1),
            "ratio_vs_bare": round(rps / bare_rps, 4),
            "cpu_us_per_request": round(cpu, 1),
            "extra_cpu_us_per_request": round(cpu - bare_cpu, 1),
            "samples": samples[variant.name],
        }
        print(
            f"| {variant.description} | {rps:.0f} | {rps / bare_rps:.1%} | {cpu:.0f} | "
            f"{cpu - bare_cpu:+.0f} |"
        )
    singles = [
        v.name
        for v in variants
        if v.name not in ("bare", "full_jwt", "auth_api_key", "rate_limit_memory")
    ]
    if "full_jwt" in summary:
        added = sum(summary[n]["extra_cpu_us_per_request"] for n in singles)
        print(
            f"\nsum of single-middleware costs (JWT path, Redis limiter): {added:+.0f} us; "
            f"full chain measured: {summary['full_jwt']['extra_cpu_us_per_request']:+.0f} us"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "benchmark": "middleware_ablation",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": _git("rev-parse", "HEAD"),
                "machine": machine,
                "route": f"GET {ROUTE}",
                "seconds": seconds,
                "warmup_seconds": cfg.warmup_seconds,
                "rounds": rounds,
                "connections": cfg.connections,
                "tool": "wrk",
                "variants": summary,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

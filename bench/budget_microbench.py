"""What token budgets and tenants cost one invoke, in process CPU: no budget vs a day and a
month budget, and vs a tenant's principal whose tenant policy sets those budgets (the tenant
lookup on every path plus the budget check).

Run with ``make bench`` (or ``python -m bench.budget_microbench``; about a minute). The
method is bench/tracing_microbench.py's (one child process per scenario, in-process ASGI
invokes through the full chain, process CPU per request, best window), here with the stores
in a private redis-server, since a budget is Redis round trips: every model call holds its
tokens (the RESERVE script) and writes its spend when it ends. The cache is off, so every
invoke makes one model call (a cache hit holds too: whether the cache answers is known only after
the call, so hits cost the same). Both scenarios record
usage in the ledger (batched); the difference is the budget check alone. Target (issue 15):
< 5 % of the full chain. Writes bench/results/budget_microbench.json and .md.
"""

from __future__ import annotations

import statistics
import sys
from datetime import UTC, datetime
from typing import Any

from bench.middleware_overhead import _git, machine_info
from bench.result_files import report
from bench.tracing_microbench import micro_config, run_child

RESULT_NAME = "budget_microbench"
SCENARIOS = {
    "no_budget": {},
    "budgets": {
        "BUDGET_TOKENS_PER_DAY": "1000000000000",
        "BUDGET_TOKENS_PER_MONTH": "1000000000000",
    },
    # bench/tenant_principal.py: the tenant's policy holds the same budgets.
    "tenant": {"MICRO_TENANT": "1"},
}
TARGET = 0.05


def run(requests: int, windows: int, rounds: int) -> dict[str, Any]:
    from tests.support.redis_server import RedisServer

    started = datetime.now(UTC)
    samples: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    redis = RedisServer()
    try:
        redis.start()
        names = list(SCENARIOS)
        for index in range(rounds):
            for name in names if index % 2 == 0 else names[::-1]:
                settings = {"TRACING_ENABLED": "false", "MICRO_REDIS_URL": redis.url}
                got = run_child({**settings, **SCENARIOS[name]}, requests, windows)
                samples[name].extend(got)
                print(f"round {index + 1} {name:<10} " + " ".join(f"{s:7.1f}" for s in got))
    finally:
        redis.close()
    best = {name: min(values) for name, values in samples.items()}
    median = {name: statistics.median(values) for name, values in samples.items()}
    cost = best["budgets"] / best["no_budget"] - 1
    cost_median = median["budgets"] / median["no_budget"] - 1
    tenant_cost = best["tenant"] / best["no_budget"] - 1
    tenant_cost_median = median["tenant"] / median["no_budget"] - 1
    return {
        "benchmark": RESULT_NAME,
        "issue": "15 (budgets, tenants)",
        "command": "make bench  (python -m bench.budget_microbench)",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "machine": machine_info(),
        "method": "bench/tracing_microbench.py's children with Redis stores (a private "
        "redis-server), tracing off, cache off: process CPU per invoke, best window",
        "config": {"requests_per_window": requests, "windows_per_child": windows, "rounds": rounds},
        "us_per_request": {name: round(value, 1) for name, value in best.items()},
        "us_per_request_median": {name: round(value, 1) for name, value in median.items()},
        "cost": round(cost, 4),
        "cost_median": round(cost_median, 4),
        "tenant_cost": round(tenant_cost, 4),
        "tenant_cost_median": round(tenant_cost_median, 4),
        "target": {"max_cost": TARGET, "met": cost < TARGET and tenant_cost < TARGET},
        "samples": {name: [round(v, 1) for v in values] for name, values in samples.items()},
    }


def render_markdown(result: dict[str, Any]) -> str:
    best, median = result["us_per_request"], result["us_per_request_median"]
    met = "met" if result["target"]["met"] else "NOT met"
    return "\n".join(
        [
            f"# Budget check cost ({result['date']}, `{result['command']}`)",
            "",
            "POST /v1/agents/chat/invoke, full chain, Redis stores, cache off (every invoke "
            "makes one model call: one hold, one spend write).",
            "",
            "| scenario | CPU us/request (best) | median |",
            "|---|---|---|",
            f"| no budget | {best['no_budget']:.1f} | {median['no_budget']:.1f} |",
            f"| day + month budgets | {best['budgets']:.1f} | {median['budgets']:.1f} |",
            f"| a tenant's principal, budgets from its policy | {best['tenant']:.1f} "
            f"| {median['tenant']:.1f} |",
            "",
            f"Budgets: {result['cost']:+.1%} (best), {result['cost_median']:+.1%} (median); "
            f"tenant lookup + its budgets: {result['tenant_cost']:+.1%} (best), "
            f"{result['tenant_cost_median']:+.1%} (median); target < {TARGET:.0%} each: {met}.",
            "",
        ]
    )


def main() -> int:
    return report(RESULT_NAME, lambda: run(*micro_config(2)), render_markdown)


if __name__ == "__main__":
    sys.exit(main())

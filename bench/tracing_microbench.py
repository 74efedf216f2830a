"""What tracing costs one invoke, in process CPU: tracing off, on at 1 %, on at 100 %.

Run with ``make bench`` (or ``python -m bench.tracing_microbench``; about a minute). The
server benchmark (bench/tracing_overhead.py) reads a server's CPU from /proc under HTTP load,
and on this shared 2-core machine its rounds of one scenario differ by up to 20 %: more than
the 3 % a 1 % sampler may cost. This one removes the load generator, the sockets and the
other processes from the measurement, as bench/agent_microbench.py does for the agent path:
one child process per scenario (OpenTelemetry's provider is process-wide) drives
``create_app(settings)`` through a minimal ASGI caller and counts its own CPU time
(``time.process_time``: every thread, so the batch exporter's thread counts). Each measured
window ends with a flush of the tracer provider, so the spans its requests made are encoded
and POSTed to the OTLP receiver inside the window they are charged to. The receiver (the
tests' real OTLP/HTTP receiver, decoding every request) runs in this parent process, outside
every measurement.

Same request as the server benchmark: ``POST /v1/agents/chat/invoke`` with a JWT through the
full chain (rate limit, metrics, JSON access log at INFO to a file, security headers), the
offline model answering 20 tokens at once, the cache off so every run makes its model call.
Two processes running the same code differ by up to 20 % here (memory layout, the VM's
neighbours), far more than windows within one process do: so each scenario runs in
MICRO_ROUNDS children (alternating, PYTHONHASHSEED fixed), each child's figure is its best
window (other work only ever adds CPU time), and a scenario's figure is the median of its
children's. Cost = on / off - 1; targets < 15 % at 100 %, < 3 % at 1 %.

Then each figure once more within single processes (``paired``): each child alternates
windows with tracing on and switched off (on, off, off, on, ...: every hook checks one module
global), and the cost is the median of the on/off ratios of its pairs; the process-to-process
difference cancels out. bench/tracing_instructions.py counts the same in instructions.

Knobs: MICRO_REQUESTS (400 per window), MICRO_WINDOWS (4 per child), MICRO_ROUNDS (5 children
per scenario). Writes bench/results/tracing_microbench.json and .md.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from bench.middleware_overhead import _git, machine_info
from bench.result_files import report

RESULT_NAME = "tracing_microbench"
SCENARIOS = ("off", "on_1", "on_100")
TARGETS = {"on_100": 0.15, "on_1": 0.03}
TOKENS = 20
CONCURRENCY = 8


def _scenario_env(name: str, receiver_url: str) -> dict[str, str]:
    if name == "off":
        return {"TRACING_ENABLED": "false"}
    return {
        "TRACING_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url,
        "OTEL_TRACES_SAMPLER": "always_on" if name == "on_100" else "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1" if name == "on_100" else "0.01",
    }


# --- the child: one scenario, several measured windows --------------------------------------


async def invoke_concurrently(
    app: Any, path: str, auth: list[tuple[bytes, bytes]], total: int
) -> None:
    """``total`` invokes by CONCURRENCY clients in flight at once; anything but a 200 stops it."""
    from bench.agent_microbench import BODY, call

    async def one_client(n: int) -> None:
        for _ in range(n):
            status, _, body = await call(app, path, auth, BODY)
            if status != 200:
                raise RuntimeError(f"invoke answered {status}: {body[:300]!r}")

    share = [total // CONCURRENCY + (i < total % CONCURRENCY) for i in range(CONCURRENCY)]
    await asyncio.gather(*(one_client(n) for n in share))


async def _child_windows(requests: int, windows: int) -> list[float]:
    from asgi_lifespan import LifespanManager

    from app.entrypoints.server import settle_heap
    from app.main import create_app
    from app.observability import tracing
    from bench.agent_microbench import Case, _settings, _token

    password = secrets.token_urlsafe(18)
    settings = _settings(password, TOKENS).model_copy(update={"CACHE_ENABLED": False})
    async with LifespanManager(create_app(settings)) as manager:
        app = manager.app
        auth = await _token(app, password)
        if os.environ.get("MICRO_TENANT"):  # a tenant's principal (bench/budget_microbench.py)
            from bench.tenant_principal import tenant_token

            auth = await tenant_token(app, auth)
        case = Case("invoke", app, "/v1/agents/chat/invoke", auth, tokens=TOKENS, cached=False)
        await case.prime()
        settle_heap()
        active = tracing._tracing  # noqa: SLF001 - the bench flushes what the window made

        def flush() -> None:
            if active is not None:
                active.provider.force_flush()

        async def invoke_many(total: int) -> None:
            await invoke_concurrently(app, case.path, auth, total)

        paired = os.environ.get("MICRO_PAIRED") == "1"
        samples = []
        for index in range(windows):
            if paired:  # on, off, off, on, ...: neither mode always first, nor always second
                tracing._tracing = active if index % 4 in (0, 3) else None  # noqa: SLF001
            await invoke_many(requests // 5)  # warm-up, and its spans exported before the window
            flush()
            cpu = time.process_time()
            await invoke_many(requests)
            flush()  # the export of this window's spans is this window's cost
            samples.append((time.process_time() - cpu) / requests * 1e6)
        tracing._tracing = active  # noqa: SLF001 - the lifespan's shutdown flushes it
    return samples


def child_main(requests: int, windows: int) -> int:
    import uvloop

    real_stdout = sys.stdout
    with tempfile.NamedTemporaryFile("w", prefix="agent-trace-micro-", suffix=".log") as log:
        sys.stdout = log  # the JSON access log goes to a file, as in production
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                samples = runner.run(_child_windows(requests, windows))
        finally:
            sys.stdout = real_stdout
    print(json.dumps(samples))
    return 0


# --- the parent: receiver, children, figures ------------------------------------------------


def run_child(settings: dict[str, str], requests: int, windows: int) -> list[float]:
    """One child's CPU us per request, window by window: the app built with ``settings`` in
    its environment (and none of the caller's tracing, Redis, cache or budget settings)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TRACING_", "REDIS_", "CACHE_", "BUDGET_"))
    }
    env.update(settings)
    env["PYTHONHASHSEED"] = "0"  # one less difference between the children
    argv = [sys.executable, "-m", "bench.tracing_microbench", "--child", str(requests)]
    done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [*argv, str(windows)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"a child failed\n{done.stderr[-2000:]}")
    samples: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return samples


def run(requests: int, windows: int, rounds: int) -> dict[str, Any]:
    from tests.support.otlp_receiver import OtlpReceiver

    started = datetime.now(UTC)
    samples: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    child_best: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    receiver = OtlpReceiver().start()
    try:
        for index in range(rounds):
            order = SCENARIOS if index % 2 == 0 else SCENARIOS[::-1]
            for name in order:
                got = run_child(_scenario_env(name, receiver.url), requests, windows)
                samples[name].extend(got)
                child_best[name].append(min(got))
                print(f"round {index + 1} {name:<7} " + " ".join(f"{s:7.1f}" for s in got))
        # Each figure again, in one process: windows alternate with tracing switched off
        # between them (every hook checks one module global), so no process-to-process
        # difference enters the ratio of each pair (a pair: on and its neighbouring off).
        pair_ratios: dict[str, list[float]] = {name: [] for name in TARGETS}
        for index in range(rounds):
            for name in TARGETS:
                env = {**_scenario_env(name, receiver.url), "MICRO_PAIRED": "1"}
                got = run_child(env, requests, windows * 2)
                ratios = [
                    (got[i] / got[i + 1]) if i % 4 == 0 else (got[i + 1] / got[i])
                    for i in range(0, len(got) - 1, 2)
                ]
                pair_ratios[name].extend(ratios)
                print(
                    f"round {index + 1} paired {name:<7} "
                    + " ".join(f"{r - 1:+.1%}" for r in ratios)
                )
        spans = len(receiver.spans)
    finally:
        receiver.stop()
    if spans == 0:
        raise RuntimeError("tracing was on but the receiver got no span: nothing was measured")
    best = {name: statistics.median(values) for name, values in child_best.items()}
    median = {name: statistics.median(values) for name, values in samples.items()}
    cost = {name: best[name] / best["off"] - 1 for name in TARGETS}
    cost_median = {name: median[name] / median["off"] - 1 for name in TARGETS}
    return {
        "benchmark": RESULT_NAME,
        "issue": "16 (tracing)",
        "command": "make bench  (python -m bench.tracing_microbench)",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "machine": machine_info(),
        "method": "in-process ASGI invokes on uvloop, child processes per scenario "
        "(alternating, PYTHONHASHSEED=0), process CPU time per request (every thread) "
        "including a flush of the spans to a loopback OTLP/HTTP receiver at the end of each "
        "window; figure = median over children of each child's best window",
        "config": {
            "requests_per_window": requests,
            "windows_per_child": windows,
            "children_per_scenario": rounds,
            "concurrency": CONCURRENCY,
            "tokens": TOKENS,
        },
        "spans_received": spans,
        "us_per_request": {name: round(value, 1) for name, value in best.items()},
        "us_per_request_median": {name: round(value, 1) for name, value in median.items()},
        "cost": {name: round(value, 4) for name, value in cost.items()},
        "cost_median": {name: round(value, 4) for name, value in cost_median.items()},
        "target": {
            name: {"max_cost": limit, "met": cost[name] < limit} for name, limit in TARGETS.items()
        },
        "paired": {
            name: {
                "method": "one process, windows alternating tracing on and switched off "
                "(on, off, off, on, ...); cost = median over pairs of on/off - 1",
                "cost": round(statistics.median(ratios) - 1, 4),
                "pair_costs": [round(r - 1, 4) for r in ratios],
                "target": {"max_cost": TARGETS[name]},
            }
            for name, ratios in pair_ratios.items()
        },
        "samples": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "child_best": {name: [round(v, 1) for v in values] for name, values in child_best.items()},
    }


def render_markdown(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [
        f"# Tracing cost in process ({result['date']}, `{result['command']}`)",
        "",
        f"POST /v1/agents/chat/invoke, full chain, offline model ({config['tokens']} tokens, "
        f"no cache); {config['children_per_scenario']} child processes per scenario x "
        f"{config['windows_per_child']} windows of {config['requests_per_window']} requests, "
        f"{config['concurrency']} in flight; each window ends with the export of its spans.",
        "",
        "| tracing | CPU us/request (children's best, median) | all windows, median "
        "| cost | cost (all windows) | target |",
        "|---|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        target = result["target"].get(name)
        cost = result["cost"].get(name)
        cost_median = result["cost_median"].get(name)
        lines.append(
            f"| {name} | {result['us_per_request'][name]:.1f} | "
            f"{result['us_per_request_median'][name]:.1f} | "
            + (f"{cost:+.1%} | {cost_median:+.1%}" if cost is not None else "- | -")
            + " | "
            + (
                f"< {target['max_cost']:.0%}: {'met' if target['met'] else 'NOT met'}"
                if target
                else "-"
            )
            + " |"
        )
    lines.append("")
    for name, paired in result["paired"].items():
        costs = paired["pair_costs"]
        lines.append(
            f"In one process, {name} (tracing on and switched off in alternate windows, "
            f"{len(costs)} pairs): cost {paired['cost']:+.1%} (pairs from {min(costs):+.1%} "
            f"to {max(costs):+.1%}); target < {paired['target']['max_cost']:.0%}: "
            + ("met" if paired["cost"] < paired["target"]["max_cost"] else "NOT met")
            + ".  "
        )
    lines += [
        "",
        f"{result['spans_received']} spans reached the OTLP receiver.",
        "",
    ]
    return "\n".join(lines)


def micro_config(rounds: int) -> tuple[int, int, int]:
    """MICRO_REQUESTS per window, MICRO_WINDOWS per child, MICRO_ROUNDS children a scenario."""
    return (
        int(os.environ.get("MICRO_REQUESTS", "400")),
        int(os.environ.get("MICRO_WINDOWS", "4")),
        int(os.environ.get("MICRO_ROUNDS", str(rounds))),
    )


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        return child_main(int(sys.argv[2]), int(sys.argv[3]))
    return report(RESULT_NAME, lambda: run(*micro_config(5)), render_markdown)


if __name__ == "__main__":
    sys.exit(main())

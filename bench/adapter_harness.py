"""What the adapter benchmarks share: timing runs in a row, alternating rounds, and running
the measurement on uvloop with the app's log lines going to a file, not the terminal."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop

TOKENS = 64  # each case's run streams this many tokens
RunOnce = Callable[[], Awaitable[int]]  # one run; returns how many tokens it streamed
Measured = dict[str, dict[str, list[float]]]  # case -> figure -> one value per round


async def measure(run_once: RunOnce, runs: int) -> tuple[float, float]:
    """(tokens per second, CPU microseconds per token) over ``runs`` runs in a row."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        if (got := await run_once()) != TOKENS:
            raise RuntimeError(f"a run streamed {got} tokens, not {TOKENS}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return TOKENS * runs / wall, cpu / (TOKENS * runs) * 1e6


async def alternate_rounds(cases: dict[str, RunOnce], *, runs: int, rounds: int) -> Measured:
    """Each case warmed up, then measured once per round, the order reversed every other
    round so neither end of a round is always the warmer one."""
    for run_once in cases.values():  # warm up: imports, caches, first-run setup
        await measure(run_once, max(runs // 5, 5))
    measured: Measured = {name: {"tokens_per_s": [], "cpu_us_per_token": []} for name in cases}
    for index in range(rounds):
        for name in list(cases) if index % 2 == 0 else list(reversed(cases)):
            rate, cpu = await measure(cases[name], runs)
            measured[name]["tokens_per_s"].append(rate)
            measured[name]["cpu_us_per_token"].append(cpu)
            line = f"round {index + 1} {name:<16} {rate:9.0f} tokens/s {cpu:8.2f} us CPU/token"
            print(line, file=sys.__stdout__, flush=True)
    return measured


def run_quietly(bench: Callable[[], Coroutine[Any, Any, Measured]]) -> Measured | None:
    """Run ``bench`` on uvloop; the app logs (JSON, INFO) to sys.stdout as configured at
    create_app, so stdout is a file meanwhile, as in production. None if it failed (said)."""
    real_stdout = sys.stdout
    with tempfile.NamedTemporaryFile("w", prefix="adapter-bench-", suffix=".log") as log:
        sys.stdout = log
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(bench())
        except RuntimeError as exc:
            print(f"BENCH FAILED: {exc}", file=sys.stderr)
            return None
        finally:
            sys.stdout = real_stdout

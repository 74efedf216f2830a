"""Background task throughput: 1 worker process, 1,000 short tasks, over real HTTP and Redis.

Run with ``make bench`` (or ``python -m bench.task_throughput`` from the repo root).

Setup: a private redis-server, one API process (WORKER_ENABLED=false, rate limit off) and
one ``agent-service worker`` process (WORKER_CONCURRENCY=BENCH_TASK_CONCURRENCY), the
offline LLM answering 5 tokens with no latency, so the numbers measure the queue, not a
model. Steps, all in one invocation so the machine's noise hits both alike:

1. baseline: BENCH_TASKS foreground ``POST /v1/agents/chat/invoke`` calls (same agent, same
   client concurrency) against the same API, with the embedded worker not involved;
2. dispatch latency: BENCH_LATENCY_TASKS tasks submitted one at a time (each waits for the
   previous one to start), so the number is the queue's hand-over time, not queueing behind
   a burst: started_at - submitted_at from the task records, p50/p99;
3. throughput: BENCH_TASKS ``POST /v1/tasks`` submissions from the concurrent clients, then
   wait until every task finished.

Reported: submissions/s, tasks dispatched/s (first submit -> last start), dispatch latency
p50/p99 (phase 2) and under the burst (phase 3), end-to-end time of the burst (first submit
-> last finish), and the ratio of task throughput to foreground throughput.
Results: bench/results/task_throughput.json and .md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.task_records import all_task_records
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.server_process import ROOT, TEST_ENV, ServerProcess

TASKS = int(os.environ.get("BENCH_TASKS", "1000"))
LATENCY_TASKS = int(os.environ.get("BENCH_LATENCY_TASKS", "200"))
CLIENTS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WORKER_CONCURRENCY = int(os.environ.get("BENCH_TASK_CONCURRENCY", "32"))
RESULTS = ROOT / "bench" / "results"

ENV = {
    "OFFLINE_LATENCY_MS": "0",
    "OFFLINE_TOKENS_PER_SECOND": "0",
    "OFFLINE_RESPONSE_TOKENS": "5",
    "CACHE_ENABLED": "false",  # every task calls the model; no shortcut
    "RATE_LIMIT_ENABLED": "false",
    # One client principal submits the whole burst: the per-principal caps would refuse it.
    "MAX_CONCURRENT_RUNS_PER_PRINCIPAL": "0",
    "MAX_ACTIVE_TASKS_PER_PRINCIPAL": "0",
    "ACCESS_LOG_ENABLED": "false",
    # INFO: the test harness waits for uvicorn's "running on" line (its own bound port)
    "LOG_LEVEL": "INFO",
    "WORKER_ENABLED": "false",
    "WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
    "REDIS_KEY_PREFIX": "bench-tasks:",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _fire(url: str, headers: dict[str, str], bodies: list[dict[str, Any]]) -> list[Any]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    out: list[Any] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

        async def one() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                response = await client.post(url, json=body)
                if response.status_code not in (200, 202):
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
                out.append(response.json())

        await asyncio.gather(*(one() for _ in range(CLIENTS)))
    return out


async def _wait_all(base: str, headers: dict[str, str], ids: set[str]) -> list[dict[str, Any]]:
    """Wait until every one of ``ids`` ended; return their records.

    Reads the unfiltered listing (bench/task_records.py says why).
    """
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            records = await all_task_records(client)
            ended = [r for r in records if r["task_id"] in ids and r["finished_at"]]
            if len(ended) == len(ids):
                return ended
            await asyncio.sleep(0.5)
        raise RuntimeError("tasks did not finish in 10 minutes")


async def _one_at_a_time(base: str, headers: dict[str, str], count: int) -> list[float]:
    """Submit, wait until the worker started it, repeat: pure hand-over latency."""
    latencies = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for i in range(count):
            submitted = await client.post("/v1/tasks", json={"agent": "chat", "input": f"q{i}"})
            task_id = submitted.json()["task_id"]
            while True:
                record = (await client.get(f"/v1/tasks/{task_id}")).json()
                if record["started_at"]:
                    break
                await asyncio.sleep(0.005)
            latencies.append(_ts(record["started_at"]) - _ts(record["submitted_at"]))
    return latencies


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> int:
    redis = RedisServer()
    redis.start()
    worker: subprocess.Popen[bytes] | None = None
    env = {**ENV, "REDIS_URL": redis.url}
    try:
        with ServerProcess(env=env) as api:
            worker_env = {**os.environ, **TEST_ENV, **env, "WORKER_METRICS_PORT": str(free_port())}
            worker = subprocess.Popen(
                [sys.executable, "-m", "app.entrypoints.cli", "worker"],
                cwd=ROOT,
                env=worker_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            token = httpx.post(
                f"{api.url}/v1/auth/token",
                data={"username": "admin", "password": TEST_ENV["ADMIN_PASSWORD"]},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            bodies = [{"input": f"short question {i}"} for i in range(TASKS)]

            started = time.perf_counter()
            asyncio.run(_fire(f"{api.url}/v1/agents/chat/invoke", headers, bodies))
            invoke_seconds = time.perf_counter() - started

            quiet = asyncio.run(_one_at_a_time(api.url, headers, LATENCY_TASKS))
            task_bodies = [{"agent": "chat", **body} for body in bodies]
            started = time.perf_counter()
            submitted = asyncio.run(_fire(f"{api.url}/v1/tasks", headers, task_bodies))
            submit_seconds = time.perf_counter() - started
            burst_ids = {item["task_id"] for item in submitted}
            records = asyncio.run(_wait_all(api.url, headers, burst_ids))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        redis.close()

    assert all(r["status"] == "completed" for r in records), "every task must complete"
    dispatch = [_ts(r["started_at"]) - _ts(r["submitted_at"]) for r in records]
    first_submit = min(_ts(r["submitted_at"]) for r in records)
    last_start = max(_ts(r["started_at"]) for r in records)
    last_finish = max(_ts(r["finished_at"]) for r in records)
    e2e = last_finish - first_submit
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "make bench  (python -m bench.task_throughput)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "tasks": TASKS,
        "client_concurrency": CLIENTS,
        "worker_concurrency": WORKER_CONCURRENCY,
        "baseline_invoke_per_s": round(TASKS / invoke_seconds, 1),
        "submissions_per_s": round(TASKS / submit_seconds, 1),
        "dispatched_per_s": round(TASKS / (last_start - first_submit), 1),
        "dispatch_latency_ms": {
            "p50": round(percentile(quiet, 50) * 1000, 2),
            "p99": round(percentile(quiet, 99) * 1000, 2),
            "samples": len(quiet),
        },
        "dispatch_latency_under_burst_ms": {
            "p50": round(percentile(dispatch, 50) * 1000, 2),
            "p99": round(percentile(dispatch, 99) * 1000, 2),
        },
        "end_to_end_seconds": round(e2e, 2),
        "tasks_per_s_end_to_end": round(TASKS / e2e, 1),
        "ratio_task_vs_invoke_throughput": round((TASKS / e2e) / (TASKS / invoke_seconds), 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "task_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Background task throughput",
        "",
        f"`make bench` on {result['date']}, {result['machine']['cpus']} CPUs, "
        f"{TASKS} tasks, 1 worker (concurrency {WORKER_CONCURRENCY}), "
        f"{CLIENTS} client connections.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| foreground invoke (baseline) | {result['baseline_invoke_per_s']} /s |",
        f"| task submissions | {result['submissions_per_s']} /s |",
        f"| tasks dispatched | {result['dispatched_per_s']} /s |",
        f"| dispatch latency p50 / p99 (one at a time) | {result['dispatch_latency_ms']['p50']}"
        f" ms / {result['dispatch_latency_ms']['p99']} ms |",
        f"| dispatch latency p50 / p99 (during the {TASKS}-task burst) | "
        f"{result['dispatch_latency_under_burst_ms']['p50']} ms / "
        f"{result['dispatch_latency_under_burst_ms']['p99']} ms |",
        f"| end-to-end, {TASKS} tasks | {result['end_to_end_seconds']} s |",
        f"| task throughput / invoke throughput | {result['ratio_task_vs_invoke_throughput']} |",
        "",
    ]
    (RESULTS / "task_throughput.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

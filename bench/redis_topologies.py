"""One Redis against a Redis Cluster, and one API + one worker against two of each.

Run with ``python -m bench.redis_topologies`` from the repo root (``make bench`` runs it too).

In one run, the same machine's noise hitting every cell alike: a private redis-server and a
private 3-primary cluster (one replica each, tests/support/redis_topologies.py), and for each
of them N API processes (``agent-service serve``, WORKER_ENABLED=false) and N ``agent-service
worker`` processes, N = 1 then 2. Per cell, under a fresh key prefix:

- invoke: ``POST /v1/agents/chat/invoke`` with ``"store": false`` and the same input, so a
  cache hit after the first (the LLM cache in Redis), BENCH_CONNECTIONS keep-alive
  connections spread over the API processes (bench/agent_path_load.py's raw-socket loop),
  BENCH_WARMUP_SECONDS then BENCH_SECONDS; req/s and p50/p99 latency.
- tasks: BENCH_TASK_CLIENTS clients submit ``POST /v1/tasks`` (distinct inputs: each task
  calls the offline model, 5 tokens, no latency) for BENCH_SECONDS, spread over the API
  processes; then wait until all completed. Tasks/s = tasks / (first submit -> all done).

Rate limiting stays on (one Redis round trip per request; limit out of reach), as in
production. Next to every rate: CPU per request (user + system of the API and worker
processes from /proc, divided by the requests or tasks): on a shared machine that is the
figure to read, the rates move with whoever else runs. Results:
bench/results/redis_topologies.json and .md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import agent_path_load as load
from bench import sse_load
from bench.result_files import save_results
from bench.run_log_readers import machine_busy, percentile
from bench.security_overhead import cpu_seconds
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import RedisClusterTopology
from tests.support.server_process import ROOT, TEST_ENV, ServerProcess

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
TASK_CLIENTS = int(os.environ.get("BENCH_TASK_CLIENTS", "16"))
SCALES = (1, 2)
INPUT = "Describe the sea in one sentence."

ENV = {
    "OFFLINE_LATENCY_MS": "0",
    "OFFLINE_TOKENS_PER_SECOND": "0",
    "OFFLINE_RESPONSE_TOKENS": "5",
    "RATE_LIMIT_REQUESTS": "100000000",  # on, never biting
    "MAX_CONCURRENT_RUNS_PER_PRINCIPAL": "0",  # one principal sends everything
    "MAX_ACTIVE_TASKS_PER_PRINCIPAL": "0",
    "ACCESS_LOG_ENABLED": "false",
    # LOG_LEVEL stays INFO: ServerProcess reads the "running on" line to know it is bound.
    "WORKER_ENABLED": "false",
    "WORKER_CONCURRENCY": "32",
}


class Processes:
    """The API and worker processes of one cell; CPU read from /proc by pid."""

    def __init__(
        self, stack: ExitStack, env: dict[str, str], scale: int, redis_pids: list[int]
    ) -> None:
        self.redis_pids = redis_pids
        self.apis = []
        for _ in range(scale):
            api = ServerProcess(env=env)
            stack.callback(api.__exit__)
            self.apis.append(api.start(timeout=120))  # a shared machine: starts can be slow
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_logs: list[Path] = []
        self.worker_metrics: list[str] = []
        for _ in range(scale):
            port = free_port()
            worker_env = {**os.environ, **TEST_ENV, **env, "WORKER_METRICS_PORT": str(port)}
            log_path = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
            stack.callback(log_path.unlink, missing_ok=True)
            with log_path.open("ab") as log_file:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "app.entrypoints.cli", "worker"],
                    cwd=ROOT,
                    env=worker_env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            stack.callback(_stop, worker)
            self.workers.append(worker)
            self.worker_logs.append(log_path)
            self.worker_metrics.append(f"http://127.0.0.1:{port}/metrics")
            _wait_http(self.worker_metrics[-1])

    def check_workers(self, why: str) -> None:
        """Raise with the workers' last log lines if one exited, or when `why` is given."""
        exited = [worker.pid for worker in self.workers if worker.poll() is not None]
        if exited or why:
            tails = [path.read_text(errors="replace")[-3000:] for path in self.worker_logs]
            raise RuntimeError(f"{why or f'workers exited: {exited}'}\n" + "\n---\n".join(tails))

    def finished(self) -> dict[str, int]:
        """Tasks the workers ended so far, by status (their ``tasks_finished_total``): exact
        at any count and cheap, unlike paging through the API's listing."""
        counts: dict[str, int] = {}
        for url in self.worker_metrics:
            text = httpx.get(url, timeout=10).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "tasks_finished_total":
                        status = sample.labels["status"]
                        counts[status] = counts.get(status, 0) + int(sample.value)
        return counts

    def pids(self) -> list[int]:
        return [api.process.pid for api in self.apis if api.process] + [
            worker.pid for worker in self.workers
        ]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def redis_cpu(self) -> float:
        """Every redis-server of the topology (a cluster's replicas too: they apply writes)."""
        return sum(cpu_seconds(pid) for pid in self.redis_pids)


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far (ours: API + workers; Redis; this load generator; the whole
    machine) and the monotonic clock; a difference of two is what a measurement used."""

    ours: float
    redis: float
    client: float
    machine: float
    at: float

    @classmethod
    def now(cls, cell: Processes) -> Usage:
        return cls(
            cell.cpu(), cell.redis_cpu(), time.process_time(), machine_busy(), time.monotonic()
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.ours - other.ours,
            self.redis - other.redis,
            self.client - other.client,
            self.machine - other.machine,
            self.at - other.at,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _login(api: ServerProcess) -> str:
    form = {"username": "admin", "password": TEST_ENV["ADMIN_PASSWORD"]}
    response = httpx.post(f"{api.url}/v1/auth/token", data=form, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


# --- invoke -----------------------------------------------------------------------------------


async def _invoke_for(ports: list[int], token: str, seconds: float) -> load.Tally:
    tally = load.Tally()
    deadline = time.monotonic() + seconds
    loops = []
    for index in range(CONNECTIONS):
        port = ports[index % len(ports)]
        request = sse_load.request_bytes(
            "POST",
            "/v1/agents/chat/invoke",
            f"127.0.0.1:{port}",
            {"Authorization": f"Bearer {token}"},
            {"input": INPUT, "store": False},
        )
        loops.append(load.invoke_loop(port, request, deadline, tally))
    await asyncio.gather(*loops)
    if tally.failures:
        raise RuntimeError(f"invoke failed: {tally.failures[:3]}")
    return tally


def measure_invoke(cell: Processes, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    for api in cell.apis:  # the first fills the cache; each process then answers a hit
        for _ in range(2):
            answer = httpx.post(
                f"{api.url}/v1/agents/chat/invoke",
                json={"input": INPUT, "store": False},
                headers=headers,
                timeout=30,
            )
            answer.raise_for_status()
        if answer.headers.get("x-cache") != "HIT":
            raise RuntimeError(f"expected a cache hit, got {answer.headers.get('x-cache')}")
    ports = [api.port for api in cell.apis]
    asyncio.run(_invoke_for(ports, token, WARMUP_SECONDS))
    before = Usage.now(cell)
    tally = asyncio.run(_invoke_for(ports, token, SECONDS))
    used = Usage.now(cell) - before
    return {
        "requests": tally.requests,
        "per_s": round(tally.requests / used.at, 1),
        "p50_ms": round(percentile(tally.latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(tally.latencies, 99) * 1000, 2),
        "cpu_ms_per_request": round(used.ours / tally.requests * 1000, 3),
        "redis_cpu_ms_per_request": round(used.redis / tally.requests * 1000, 3),
        "client_cpu_share": round(used.client / used.at, 2),
        "machine_busy_cores": round(used.machine / used.at, 2),
    }


# --- tasks ------------------------------------------------------------------------------------


async def _submit_for(urls: list[str], token: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))
    submitted = 0

    async def client(url: str) -> None:
        nonlocal submitted
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            while time.monotonic() < deadline:
                body = {"agent": "chat", "input": f"task {next(counter)}"}
                response = await http.post("/v1/tasks", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"submit: {response.status_code} {response.text[:200]}")
                submitted += 1

    await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(TASK_CLIENTS)))
    return submitted


def measure_tasks(cell: Processes, token: str) -> dict[str, Any]:
    urls = [api.url for api in cell.apis]
    finished_before = cell.finished()
    before = Usage.now(cell)
    submitted = asyncio.run(_submit_for(urls, token, SECONDS))
    submit_seconds = time.monotonic() - before.at
    deadline = time.monotonic() + 120
    while True:
        counts = cell.finished()
        done = counts.get("completed", 0) - finished_before.get("completed", 0)
        if done >= submitted:
            break
        cell.check_workers("")
        if failed := counts.get("failed", 0) - finished_before.get("failed", 0):
            cell.check_workers(f"{failed} of {submitted} tasks failed")
        if time.monotonic() > deadline:
            cell.check_workers(f"{submitted - done} of {submitted} tasks not completed in 2 min")
        time.sleep(0.1)
    used = Usage.now(cell) - before
    return {
        "tasks": submitted,
        "drain_seconds": round(used.at - submit_seconds, 2),  # last submit -> all completed
        "submitted_per_s": round(submitted / submit_seconds, 1),
        "per_s": round(submitted / used.at, 1),
        "cpu_ms_per_task": round(used.ours / submitted * 1000, 3),
        "redis_cpu_ms_per_task": round(used.redis / submitted * 1000, 3),
        "client_cpu_share": round(used.client / used.at, 2),
        "machine_busy_cores": round(used.machine / used.at, 2),
    }


# --- the run ----------------------------------------------------------------------------------


@contextmanager
def topologies() -> Iterator[dict[str, tuple[str, list[int]]]]:
    """Each topology's REDIS_URL and the pids of its redis-server processes."""
    single, cluster = RedisServer(), RedisClusterTopology()
    try:
        single.start()
        cluster.start()
        assert single.process is not None
        cluster_pids = [node.process.pid for node in cluster.nodes if node.process]
        yield {"single": (single.url, [single.process.pid]), "cluster": (cluster.url, cluster_pids)}
    finally:
        cluster.close()
        single.close()


def run() -> dict[str, Any]:
    cells = []
    with topologies() as urls:
        for scale in SCALES:
            for name, (url, redis_pids) in urls.items():
                prefix = f"bench-topologies-{uuid.uuid4().hex[:8]}:"
                env = {**ENV, "REDIS_URL": url, "REDIS_KEY_PREFIX": prefix}
                with ExitStack() as stack:
                    cell = Processes(stack, env, scale, redis_pids)
                    token = _login(cell.apis[0])
                    invoke = measure_invoke(cell, token)
                    tasks = measure_tasks(cell, token)
                cells.append(
                    {"topology": name, "processes": scale, "invoke": invoke, "tasks": tasks}
                )
                print(f"{name} x{scale}: invoke {invoke['per_s']}/s, tasks {tasks['per_s']}/s")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.redis_topologies",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "seconds": SECONDS,
        "connections": CONNECTIONS,
        "task_clients": TASK_CLIENTS,
        "cells": cells,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        "# Redis topologies: one Redis vs a 3-primary cluster, 1 vs 2 API + worker processes",
        "",
        f"`{result['command']}` on {result['date']}, {result['machine']['cpus']} CPUs (shared; "
        f"load average {result['machine']['load_average_1m']} at the end), Python "
        f"{result['machine']['python']}. {result['seconds']:g} s per measurement; invoke: "
        f"{result['connections']} connections, cache hit, store false; tasks: "
        f"{result['task_clients']} submitting clients, 5-token offline model. Every process "
        "shares the same cores with the load generator and Redis: read CPU per request.",
        "",
        "| Redis | API + worker processes | invoke req/s | invoke p50 / p99 ms "
        "| invoke CPU ms/req (Redis) | tasks/s | task CPU ms/task (Redis) | drain s "
        "| machine busy cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in result["cells"]:
        invoke, tasks = cell["invoke"], cell["tasks"]
        lines.append(
            f"| {cell['topology']} | {cell['processes']} + {cell['processes']} "
            f"| {invoke['per_s']} | {invoke['p50_ms']} / {invoke['p99_ms']} "
            f"| {invoke['cpu_ms_per_request']} ({invoke['redis_cpu_ms_per_request']}) "
            f"| {tasks['per_s']} | {tasks['cpu_ms_per_task']} ({tasks['redis_cpu_ms_per_task']}) "
            f"| {tasks['drain_seconds']} "
            f"| {invoke['machine_busy_cores']} / {tasks['machine_busy_cores']} |"
        )
    lines += [
        "",
        "CPU ms/req and ms/task: user + system CPU of the API and worker processes over the "
        "measurement, divided by the requests (or tasks) it served; in brackets the same for "
        "the redis-server processes (all six nodes of the cluster, replicas included). Drain: "
        "from the last submission to the last task completed. Machine busy cores: every "
        "process on the machine (invoke / tasks), ours and others'.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    result = run()
    markdown = render(result)
    paths = save_results("redis_topologies", result, markdown)
    print(markdown)
    print("saved", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())

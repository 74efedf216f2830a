"""CPU cost of each middleware with no HTTP server and no load generator in the way.

Run with ``python -m bench.asgi_microbench``. Each variant runs in a fresh child process
that imports ``app.entrypoints.asgi`` with the variant's environment, runs the lifespan, and
calls the ASGI app directly (``GET /v1/auth/me``, 32 concurrent coroutines on uvloop, no
sockets except to the private redis-server). Measured: process CPU time per request
(``time.process_time``: all threads, so FastAPI's threadpool hops count too), which does
not depend on how busy the rest of the machine is nearly as much as req/s over loopback does.

Variants: bare; bare plus one middleware; the full chain (JWT and API key); the full chain
minus one middleware. Order alternates forward/reverse between rounds.

Environment knobs: MICRO_REQUESTS (4000 measured per run), MICRO_WARMUP (1000),
MICRO_ROUNDS (3), MICRO_CONCURRENCY (32), MICRO_ONLY (comma list of variant names).
Writes bench/results/middleware_microbench.json.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from bench.middleware_overhead import BARE_ENV, FULL_ENV, ROUTE, _git, machine_info

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "middleware_microbench.json"

_FULL_MINUS = {
    "request_context": {"REQUEST_CONTEXT_ENABLED": "false"},
    "access_log": {"ACCESS_LOG_ENABLED": "false"},
    "metrics": {"ENABLE_METRICS": "false"},
    "security_headers": {"SECURITY_HEADERS_ENABLED": "false"},
    "body_limit": {"MAX_REQUEST_BODY_BYTES": "0"},
    "rate_limit": {"RATE_LIMIT_ENABLED": "false"},
    "auth_failures": {"AUTH_FAILURE_LIMIT": ""},  # the failed-authentication limiter
}


@dataclass(slots=True)
class Variant:
    name: str
    env: dict[str, str]
    credentials: str = "none"  # none | jwt | api_key
    redis: bool = False
    group: str = "single"
    samples: list[dict[str, float]] = field(default_factory=list)


def _variants() -> list[Variant]:
    limit = {"RATE_LIMIT_REQUESTS": "100000000"}
    variants = [
        Variant("bare", dict(BARE_ENV), group="base"),
        Variant("+request_context", {**BARE_ENV, "REQUEST_CONTEXT_ENABLED": "true"}),
        Variant("+access_log", {**BARE_ENV, "ACCESS_LOG_ENABLED": "true", "LOG_LEVEL": "INFO"}),
        Variant("+metrics", {**BARE_ENV, "ENABLE_METRICS": "true"}),
        Variant("+security_headers", {**BARE_ENV, "SECURITY_HEADERS_ENABLED": "true"}),
        Variant("+body_limit", {**BARE_ENV, "MAX_REQUEST_BODY_BYTES": "1048576"}),
        Variant("+auth_jwt", {**BARE_ENV, "AUTH_ENABLED": "true"}, "jwt"),
        Variant("+auth_api_key", {**BARE_ENV, "AUTH_ENABLED": "true"}, "api_key", redis=True),
        Variant(
            "+rate_limit_redis", {**BARE_ENV, "RATE_LIMIT_ENABLED": "true", **limit}, redis=True
        ),
        Variant("+rate_limit_memory", {**BARE_ENV, "RATE_LIMIT_ENABLED": "true", **limit}),
        Variant("full_jwt", dict(FULL_ENV), "jwt", redis=True, group="full"),
        Variant("full_api_key", dict(FULL_ENV), "api_key", redis=True, group="full"),
        Variant("full_jwt-auth", {**FULL_ENV, "AUTH_ENABLED": "false"}, redis=True, group="minus"),
    ]
    for name, env in _FULL_MINUS.items():
        variants.append(
            Variant(f"full_jwt-{name}", {**FULL_ENV, **env}, "jwt", redis=True, group="minus")
        )
    return variants


# --- child: one variant in a fresh process ----------------------------------------------------


async def credential_headers(
    client: httpx.AsyncClient, credentials: str, password: str
) -> list[tuple[bytes, bytes]]:
    """Raw ASGI headers carrying a JWT or an API key (made through the app itself)."""
    headers: list[tuple[bytes, bytes]] = [(b"host", b"bench")]
    if credentials == "none":
        return headers
    response = await client.post("/v1/auth/token", data={"username": "admin", "password": password})
    response.raise_for_status()
    token = response.json()["access_token"]
    if credentials == "jwt":
        headers.append((b"authorization", f"Bearer {token}".encode()))
        return headers
    response = await client.post(
        "/v1/auth/api-keys",
        json={"name": "bench", "scopes": ["agents:run"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    headers.append((b"x-api-key", response.json()["key"].encode()))
    return headers


async def _child(credentials: str, warmup: int, requests: int, concurrency: int) -> dict[str, Any]:
    import httpx
    from asgi_lifespan import LifespanManager

    from app.entrypoints.asgi import app  # built from this process's environment

    password = os.environ["ADMIN_PASSWORD"]
    async with LifespanManager(app) as manager:
        asgi = manager.app
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = await credential_headers(client, credentials, password)
        template = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": ROUTE,
            "raw_path": ROUTE.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        statuses: dict[int, int] = {}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def one() -> None:
            status = 0

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            scope = dict(template)
            scope["headers"] = list(headers)
            scope["state"] = {}
            await asgi(scope, receive, send)
            statuses[status] = statuses.get(status, 0) + 1

        async def run(total: int) -> None:
            remaining = total

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await one()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(warmup)
        statuses.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await run(requests)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if set(statuses) != {200}:
        raise RuntimeError(f"statuses other than 200: {statuses}")
    return {
        "cpu_us_per_request": cpu / requests * 1e6,
        "wall_us_per_request": wall / requests * 1e6,
    }


def child_main() -> int:
    # Log lines go to a file (as in the overhead bench); the result goes to the real stdout.
    result_out = os.fdopen(os.dup(1), "w")
    log_path = os.environ["MICRO_LOG"]
    log = open(log_path, "a")  # noqa: SIM115 - stays open for the life of the process
    os.dup2(log.fileno(), 1)
    sys.stdout = log
    import uvloop

    args = (
        os.environ["MICRO_CREDENTIALS"],
        int(os.environ["MICRO_WARMUP"]),
        int(os.environ["MICRO_REQUESTS"]),
        int(os.environ["MICRO_CONCURRENCY"]),
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_child(*args))
    result_out.write(json.dumps(result) + "\n")
    result_out.flush()
    return 0


# --- parent -----------------------------------------------------------------------------------


def child_env(
    variant: Variant, common: dict[str, str], redis_url: str
) -> tuple[dict[str, str], str]:
    """The environment of a child process for one variant, and its log file."""
    from app.core.config import Settings

    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(common)
    env.update(variant.env)
    if variant.redis:
        env["REDIS_URL"] = redis_url
    env["REDIS_KEY_PREFIX"] = f"bench-{secrets.token_hex(4)}:"
    with tempfile.NamedTemporaryFile(prefix="micro-", suffix=".log", delete=False) as log:
        log_path = log.name
    env.update(
        MICRO_CHILD="1",
        MICRO_LOG=log_path,
        MICRO_CREDENTIALS=variant.credentials,
        MICRO_WARMUP=os.environ.get("MICRO_WARMUP", "1000"),
        MICRO_REQUESTS=os.environ.get("MICRO_REQUESTS", "4000"),
        MICRO_CONCURRENCY=os.environ.get("MICRO_CONCURRENCY", "32"),
    )
    return env, log_path


def run_variant(variant: Variant, common: dict[str, str], redis_url: str) -> dict[str, float]:
    env, log_path = child_env(variant, common, redis_url)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.asgi_microbench"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        log_tail = Path(log_path).read_text(errors="replace")[-3000:]
    finally:
        Path(log_path).unlink(missing_ok=True)
    if done.returncode != 0:
        # The app's excepthook logs an uncaught exception to the (redirected) stdout log.
        raise RuntimeError(
            f"{variant.name} failed:\n{done.stdout}\n{done.stderr}\nlog tail:\n{log_tail}"
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def parent_main() -> int:
    from bench.middleware_overhead import _common_env
    from tests.support.redis_server import RedisServer

    rounds = int(os.environ.get("MICRO_ROUNDS", "3"))
    only = {n.strip() for n in os.environ.get("MICRO_ONLY", "").split(",") if n.strip()}
    variants = [v for v in _variants() if not only or v.name in only or v.name == "bare"]
    common = _common_env(secrets.token_urlsafe(18))
    common.pop("WORKERS", None)
    redis = RedisServer()
    machine = machine_info()
    try:
        redis.start()
        for index in range(1, rounds + 1):
            for variant in variants if index % 2 else variants[::-1]:
                sample = run_variant(variant, common, redis.url)
                variant.samples.append(sample)
                print(
                    f"round {index} {variant.name:<26} "
                    f"{sample['cpu_us_per_request']:7.1f} us CPU/request "
                    f"({sample['wall_us_per_request']:7.1f} us wall)",
                    flush=True,
                )
    finally:
        redis.close()

    medians = {
        v.name: float(statistics.median(s["cpu_us_per_request"] for s in v.samples))
        for v in variants
    }
    bare = medians["bare"]
    full = medians.get("full_jwt")
    print("\n| variant | CPU us/request (median) | vs bare | vs full_jwt |\n|---|---|---|---|")
    summary: dict[str, Any] = {}
    for v in variants:
        cpu = medians[v.name]
        vs_full = f"{cpu - full:+.0f}" if full is not None else ""
        print(f"| {v.name} | {cpu:.0f} | {cpu - bare:+.0f} | {vs_full} |")
        summary[v.name] = {
            "group": v.group,
            "env": v.env,
            "credentials": v.credentials,
            "cpu_us_per_request": round(cpu, 1),
            "extra_vs_bare": round(cpu - bare, 1),
            "extra_vs_full_jwt": round(cpu - full, 1) if full is not None else None,
            "samples": v.samples,
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "benchmark": "middleware_microbench",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": _git("rev-parse", "HEAD"),
                "machine": machine,
                "route": f"GET {ROUTE}",
                "method": "in-process ASGI calls, uvloop, process CPU time per request",
                "requests_per_run": int(os.environ.get("MICRO_REQUESTS", "4000")),
                "concurrency": int(os.environ.get("MICRO_CONCURRENCY", "32")),
                "rounds": rounds,
                "variants": summary,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(child_main() if os.environ.get("MICRO_CHILD") == "1" else parent_main())

"""Client-side CPU of one redis-py asyncio command, as the app configures the client and not.

Run with ``python -m bench.redis_client_cost``. Starts a private redis-server, then times
``GET`` (process CPU per command, uvloop, 1 and 32 commands in flight) with:

- ``app``: ``app.store.redis_client.build_redis`` (BlockingConnectionPool, socket timeouts,
  retry, health checks), exactly what the service uses;
- ``app_no_socket_timeout``: the same without socket_timeout (redis-py then skips its
  per-send ``asyncio.wait_for``, which on Python 3.11 runs the send as a separate task);
- ``plain``: ``Redis.from_url`` defaults;
- ``pipeline2``: the app client, two commands in one pipeline (what one round trip for the
  rate limiter's hit + stats would cost).

Writes bench/results/redis_client_cost.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.middleware_overhead import _git, machine_info

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "redis_client_cost.json"
COMMANDS = int(os.environ.get("REDIS_COST_COMMANDS", "5000"))


async def _measure(op: Callable[[], Awaitable[Any]], concurrency: int) -> float:
    for _ in range(200):
        await op()
    remaining = COMMANDS

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await op()

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - start) / COMMANDS * 1e6


async def _run(url: str) -> dict[str, dict[str, float]]:
    from redis.asyncio import Redis

    from app.core.config import Settings
    from app.store.redis_client import build_redis

    settings = Settings(_env_file=None, REDIS_URL=url)  # type: ignore[call-arg]
    clients = {
        "app": build_redis(settings),
        "app_no_socket_timeout": _without_socket_timeout(build_redis(settings)),
        "plain": Redis.from_url(url, decode_responses=True),
    }
    await clients["app"].set("bench:key", "value")
    results: dict[str, dict[str, float]] = {}
    for name, client in clients.items():

        async def get(client: Any = client) -> Any:
            return await client.get("bench:key")

        results[f"{name}: GET"] = {
            f"concurrency_{c}": round(await _measure(get, c), 1) for c in (1, 32)
        }
    app_client = clients["app"]

    async def pipeline2() -> Any:
        async with app_client.pipeline(transaction=False) as pipe:
            pipe.get("bench:key")
            pipe.get("bench:key")
            return await pipe.execute()

    results["app: pipeline of 2 GETs (one round trip)"] = {
        f"concurrency_{c}": round(await _measure(pipeline2, c), 1) for c in (1, 32)
    }
    for client in clients.values():
        await client.aclose()
    return results


def _without_socket_timeout(client: Any) -> Any:
    client.connection_pool.connection_kwargs["socket_timeout"] = None
    return client


def main() -> int:
    import uvloop

    from tests.support.redis_server import RedisServer

    redis = RedisServer()
    try:
        redis.start()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(_run(redis.url))
    finally:
        redis.close()
    print("client CPU us per command (process_time / commands):")
    for name, row in results.items():
        cells = "  ".join(f"{k}={v:7.1f}" for k, v in row.items())
        print(f"  {name:<45} {cells}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "benchmark": "redis_client_cost",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": _git("rev-parse", "HEAD"),
                "machine": machine_info(),
                "commands_per_run": COMMANDS,
                "results_us_per_command": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

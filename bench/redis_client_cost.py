"""Client-side CPU of one redis-py asyncio command, as the app configures the client and not.

Run with ``python -m bench.redis_client_cost``. Starts a private redis-server, then times
``GET`` (process CPU per command, uvloop, 1 and 32 commands in flight) with:

- ``app``: ``app.store.redis_client.build_redis``, exactly what the service uses: with one
  Redis, every command on one shared connection (app/store/redis_multiplexed.py);
- ``app_pooled``: the same with ``REDIS_MULTIPLEX=false``: redis-py's BlockingConnectionPool
  with our socket timeouts, retry and health checks;
- ``plain``: ``Redis.from_url`` defaults;
- ``pipeline of 2 GETs``: the app's clients, two commands in one pipeline (one round trip).

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
    pooled = Settings(_env_file=None, REDIS_URL=url, REDIS_MULTIPLEX=False)  # type: ignore[call-arg]
    clients = {
        "app": build_redis(settings),  # commands share one connection (redis_multiplexed)
        "app_pooled": build_redis(pooled),  # REDIS_MULTIPLEX=false: redis-py's pool
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
    for name in ("app", "app_pooled"):

        async def pipeline2(client: Any = clients[name]) -> Any:
            async with client.pipeline(transaction=False) as pipe:
                pipe.get("bench:key")
                pipe.get("bench:key")
                return await pipe.execute()

        results[f"{name}: pipeline of 2 GETs (one round trip)"] = {
            f"concurrency_{c}": round(await _measure(pipeline2, c), 1) for c in (1, 32)
        }
    for client in clients.values():
        await client.aclose()
    return results


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

"""Liveness (no I/O) and readiness (dependencies, with short timeouts).

Readiness asks what the service needs of each Redis form (app/core/redis_url.py), not whether
some node answers: a cluster client's PING goes to ONE node (redis-py's default node), so it
stays green while a dead primary leaves a third of the slots unserved. So:

- one Redis: PING;
- Sentinel: ROLE on the node the sentinels name, which must answer as a primary (the pool asks
  the sentinels on connect, so an unknown primary fails the connect: MasterNotFoundError);
- cluster: CLUSTER INFO on every primary the client knows, each must say ``cluster_state:ok``
  (every slot served). A dead primary fails the connect; redis-py then refreshes its slot map
  on the next command, so the probe after the failover sees the promoted replica.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from app.api.deps import ServicesDep
from app.api.responses import problem_response
from app.api.schemas.health import Liveness, Readiness

router = APIRouter(tags=["ops"])

READY_TIMEOUT_SECONDS = 0.5

READINESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Readiness, "description": "Every required dependency answered."},
    503: {
        "model": Readiness,
        "description": "A required dependency is down (the same report, not problem+json).",
    },
    500: problem_response(500),
}


@router.get(
    "/health/live",
    summary="Liveness: the process is serving",
    response_model=Liveness,
    responses={500: problem_response(500)},
)
async def live() -> dict[str, str]:
    """Always 200 while the event loop runs; touches no dependency, so a Redis outage never
    gets the pod restarted. No credentials, never rate limited, not access-logged."""
    return {"status": "ok"}


class RedisNotReady(Exception):
    """Redis answered, but not as the service needs (a replica, a cluster missing slots)."""


async def _cluster_ready(cluster: RedisCluster) -> None:
    replies = await cluster.execute_command("CLUSTER INFO", target_nodes=RedisCluster.PRIMARIES)
    for node, info in sorted(replies.items()):
        state = info.get("cluster_state") if isinstance(info, dict) else None
        if state != "ok":
            raise RedisNotReady(f"{node} reports cluster_state:{state}")


async def _sentinel_primary_ready(redis: Redis) -> None:
    role = await redis.role()
    if not role or role[0] != "master":
        raise RedisNotReady(f"the node the sentinels name answers as {role[0] if role else '?'}")


async def _redis_ready(redis: Redis) -> None:
    if isinstance(redis, RedisCluster):  # build_redis hands a cluster out typed as Redis
        await _cluster_ready(redis)
    elif isinstance(redis.connection_pool, SentinelConnectionPool):
        await _sentinel_primary_ready(redis)
    else:
        await redis.ping()


def _failure(exc: Exception) -> dict[str, Any]:
    check: dict[str, Any] = {"status": "down", "error": type(exc).__name__}
    if isinstance(exc, RedisNotReady):
        check["detail"] = str(exc)
    elif node := getattr(exc, "last_failed_node_name", None):  # set by the cluster client
        check["detail"] = f"{node} did not answer"
    return check


async def _check_redis(services: ServicesDep) -> dict[str, Any]:
    if services.redis is None:
        return {"status": "disabled"}
    try:
        await asyncio.wait_for(_redis_ready(services.redis), READY_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return _failure(exc)
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: required dependencies answer",
    responses=READINESS_RESPONSES,
)
async def ready(services: ServicesDep) -> JSONResponse:
    """Checks each configured dependency (Redis) with a 0.5 s timeout: 200 when all answer,
    503 when one is down, so the load balancer stops sending traffic until it recovers. A
    Redis Cluster is ready when every primary answers and every slot is served; a Sentinel
    setup when the named primary answers as a primary (so a failover reads as down, then up
    by itself). No credentials, never rate limited, not access-logged."""
    checks = {"redis": await _check_redis(services)}
    healthy = all(check["status"] != "down" for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/health", summary="Readiness (alias of /health/ready)", responses=READINESS_RESPONSES)
async def health(services: ServicesDep) -> JSONResponse:
    """The same check and answer as GET /health/ready, for tools that expect /health."""
    return await ready(services)

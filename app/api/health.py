"""Liveness (no I/O) and readiness (dependencies, with short timeouts)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

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


async def _check_redis(services: ServicesDep) -> dict[str, Any]:
    if services.redis is None:
        return {"status": "disabled"}
    try:
        await asyncio.wait_for(services.redis.ping(), READY_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: required dependencies answer",
    responses=READINESS_RESPONSES,
)
async def ready(services: ServicesDep) -> JSONResponse:
    """Pings each configured dependency (Redis) with a 0.5 s timeout: 200 when all answer,
    503 when one is down, so the load balancer stops sending traffic until it recovers. No
    credentials, never rate limited, not access-logged."""
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

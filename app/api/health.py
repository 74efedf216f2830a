"""Liveness (no I/O) and readiness (dependencies, with short timeouts)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep

router = APIRouter(tags=["ops"])

READY_TIMEOUT_SECONDS = 0.5


@router.get("/health/live", summary="Liveness: the process is serving")
async def live() -> dict[str, str]:
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
    responses={503: {"description": "A required dependency is down"}},
)
async def ready(services: ServicesDep) -> JSONResponse:
    checks = {"redis": await _check_redis(services)}
    healthy = all(check["status"] != "down" for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/health", summary="Alias of /health/ready")
async def health(services: ServicesDep) -> JSONResponse:
    return await ready(services)

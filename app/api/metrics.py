"""GET /metrics as a plain route (a mounted ASGI app answers 307 to /metrics/)."""

from __future__ import annotations

import contextlib

import anyio
from fastapi import APIRouter, Header
from fastapi.responses import Response

from app.api.deps import ServicesDep
from app.observability.metrics import render_latest
from app.tasks import metrics as task_metrics

router = APIRouter(tags=["ops"])

QUEUE_DEPTH_TIMEOUT_SECONDS = 0.25


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(services: ServicesDep, accept: str = Header("")) -> Response:
    # The queue depth is read at scrape time, so API pods report it even when no worker
    # runs in them; a slow or dead Redis leaves the last value rather than delay the scrape.
    with contextlib.suppress(Exception), anyio.fail_after(QUEUE_DEPTH_TIMEOUT_SECONDS):
        task_metrics.QUEUE_DEPTH.set(await services.tasks.backend.queue_depth())
    # Multiprocess mode reads one file per worker: keep that off the event loop.
    body, content_type = await anyio.to_thread.run_sync(render_latest, accept)
    return Response(body, media_type=content_type)

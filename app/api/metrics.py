"""GET /metrics as a plain route (a mounted ASGI app answers 307 to /metrics/)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import Response

from app.observability.metrics import render_latest

router = APIRouter(tags=["ops"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    # Multiprocess mode reads one file per worker: keep that off the event loop.
    body, content_type = await anyio.to_thread.run_sync(render_latest)
    return Response(body, media_type=content_type)

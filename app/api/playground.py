"""GET / (the playground page) and GET /static/{name} (its scripts and style sheet).

A router rather than ``app.mount(StaticFiles)``: the RouteTable (route templates for metrics,
logs and rate-limit buckets) only knows routers included in app/api/router.py. Only the files
listed here are served, read once from the package (pyproject ships ``app/static/*``). The
security headers middleware gives "/" and "/static/*" the page CSP (scripts from 'self').
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, Response

from app.core.errors import NotFound

router = APIRouter(tags=["ops"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# name -> media type; anything else under /static/ is a 404.
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground-agui.js": "text/javascript; charset=utf-8",  # the AG-UI transport
    # The TypeScript client's bundle (clients/typescript, `npm run build:playground`), an ES
    # module playground.js imports: committed, so serving the page needs no node.
    "agent-service-client.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
_CACHE_CONTROL = "no-cache"  # revalidate: a redeploy must not leave a stale script behind


@cache
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("No such file.", code="not_found")
    try:
        body = _read(name)
    except OSError:
        raise NotFound("No such file.", code="not_found") from None
    return Response(body, media_type=media_type, headers={"Cache-Control": _CACHE_CONTROL})


@router.get("/", summary="The playground page")
async def index() -> Response:
    return _asset("index.html")


@router.get("/static/{name}", summary="The playground's script and style sheet")
async def static(name: str) -> Response:
    if name == "index.html":  # the page lives at "/"
        raise NotFound("No such file.", code="not_found")
    return _asset(name)

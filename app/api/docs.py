"""/docs (Swagger UI), /redoc and the OAuth2 redirect page, with no CDN and no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so /docs is blank offline. The
assets come from the ``fastapi-offline`` package (swagger-ui-dist and redoc bundles) and
are served from /docs/assets/; the pages are FastAPI's ``get_swagger_ui_html`` and
``get_redoc_html`` pointed there. Each page carries a CSP of its own that allows this
origin only, plus the exact inline script or style the page holds (by SHA-256 hash), so
no ``'unsafe-inline'`` is needed.

``mount_docs`` also completes the OpenAPI document with the shared schemas that the
``responses=`` of app/api/responses.py reference (Problem, the stream event unions).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

from app.api.responses import add_components
from app.core.config import Settings
from app.core.errors import NotFound
from app.core.routing import RouteTable

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PATH = "/docs/assets"
SWAGGER_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
REDOC_PATH = "/redoc"

# name -> media type; nothing else in the package directory is served.
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# The pages ask for /docs/assets/<name>?v=<package version>: a package upgrade changes the URL,
# so browsers may keep a fetched bundle for good instead of downloading 2.6 MB per visit.
ASSETS_VERSION = version("fastapi-offline")
_ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}
_PAGE_HEADERS = {"Cache-Control": "no-store"}

# No "valid spec" badge: it loads an image from swagger.io for every non-localhost page.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)

router = APIRouter(tags=["docs"], include_in_schema=False)


def _sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def page_csp(html: str, *, inline_styles: bool = False) -> str:
    """Only this origin, plus the page's own inline blocks by hash. ``inline_styles`` lets
    ReDoc write its style elements at run time (some before its ``nonce`` option takes
    effect); its scripts stay limited to this origin. ReDoc builds its search index in a
    Worker made from a blob: URL; Swagger UI and ReDoc show data: images."""
    inline: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _INLINE.findall(html):
        inline[tag].append(_sha256_source(body))
    if inline_styles:
        inline["style"] = ["'unsafe-inline'"]  # ignored by browsers if a hash is also listed
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *inline["script"]]),
            " ".join(["style-src 'self'", *inline["style"]]),
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "worker-src blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _page(response: HTMLResponse, *, inline_styles: bool = False) -> HTMLResponse:
    html = bytes(response.body).decode()
    csp = page_csp(html, inline_styles=inline_styles)
    return HTMLResponse(html, headers={**_PAGE_HEADERS, "Content-Security-Policy": csp})


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _openapi_url(request: Request) -> str:
    return _root(request) + str(request.app.openapi_url)


def _asset_url(request: Request, name: str) -> str:
    return f"{_root(request)}{ASSETS_PATH}/{name}?v={ASSETS_VERSION}"


@router.get(SWAGGER_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    return _page(
        get_swagger_ui_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - Swagger UI",
            oauth2_redirect_url=_root(request) + OAUTH2_REDIRECT_PATH,
            swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
            swagger_css_url=_asset_url(request, "swagger-ui.css"),
            swagger_favicon_url=_asset_url(request, "favicon.png"),
            swagger_ui_parameters={
                **SWAGGER_UI_PARAMETERS,
                **(request.app.swagger_ui_parameters or {}),
            },
        )
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return _page(get_swagger_ui_oauth2_redirect_html())


@router.get(REDOC_PATH)
async def redoc(request: Request) -> HTMLResponse:
    return _page(
        get_redoc_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=_asset_url(request, "redoc.standalone.js"),
            redoc_favicon_url=_asset_url(request, "favicon.png"),
            with_google_fonts=False,  # no fonts from Google: the system font is fine
        ),
        inline_styles=True,
    )


@router.get(ASSETS_PATH + "/{name}")
async def asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("No such file.", code="not_found")
    # FileResponse reads the file in a worker thread, off the event loop.
    return FileResponse(ASSETS_DIR / name, media_type=media_type, headers=_ASSET_HEADERS)


def install_components(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the shared component schemas (once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_components(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def mount_docs(app: FastAPI, settings: Settings, *, routes: RouteTable) -> None:
    """The complete OpenAPI document always; the pages and assets when DOCS_ENABLED."""
    install_components(app)
    if settings.DOCS_ENABLED:
        app.include_router(router)
        routes.add_router(router)

"""Defensive response headers on every HTTP response, unless the app already set them."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API returns JSON: nothing may load. The playground ("/" and its /static/ files) loads
# its one script and style sheet from this origin; it has no inline script, handler or style,
# so none is allowed (an injected <script> or onclick= would not run). /docs and /redoc send
# their own CSP (app/api/docs.py), which setdefault below leaves alone.
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _csp_for(path: str) -> str:
    if path == "/" or path.startswith("/static/"):
        return _PAGE_CSP
    return _API_CSP


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        self._static = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
        }
        if hsts_seconds:
            self._static["Strict-Transport-Security"] = f"max-age={hsts_seconds}; includeSubDomains"

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: it hands back the app's own (app/middleware/error_dialect.py).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        csp = _csp_for(scope["path"])

        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._static.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            return send(message)

        return self.app(scope, receive, send_with_headers)

"""RFC 9457 problem+json bodies, written the same way by handlers and by raw ASGI middleware."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from starlette.types import Scope, Send

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://agent-service.dev/problems/"

ErrorDialect = Callable[[Mapping[str, Any]], dict[str, Any]]
"""A protocol surface's own error shape (OpenAI's ``{"error": {...}}``): it turns the problem
body into that protocol's body, sent as plain JSON with the same status. Registered per path
prefix on the RouteTable; ErrorDialectMiddleware puts the matching one in the scope."""
ERROR_DIALECT_KEY = "agent_service.error_dialect"


def render_error(scope: Scope, problem: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The body and content type an error leaves with on this request's path."""
    dialect: ErrorDialect | None = scope.get(ERROR_DIALECT_KEY)
    if dialect is None:
        return problem, PROBLEM_CONTENT_TYPE
    return dialect(problem), "application/json"


def request_id_of(scope: Scope) -> str | None:
    value = scope.get("request_id")
    return value if isinstance(value, str) else None


def problem_body(
    *,
    status: int,
    code: str,
    detail: str,
    request_id: str | None,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return body


async def send_problem(
    send: Send,
    scope: Scope,
    *,
    status: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer from inside a pure ASGI middleware, before the app has started a response.

    A WebSocket handshake gets the same HTTP answer through the ASGI "websocket.http.response"
    extension (uvicorn has it); without it, the handshake is refused with close code 1008.
    """
    websocket = scope["type"] == "websocket"
    if websocket and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": code})
        return
    prefix = "websocket.http.response" if websocket else "http.response"
    body, content_type = render_error(
        scope,
        problem_body(status=status, code=code, detail=detail, request_id=request_id_of(scope)),
    )
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    await send({"type": f"{prefix}.start", "status": status, "headers": raw_headers})
    await send({"type": f"{prefix}.body", "body": payload})

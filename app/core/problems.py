"""RFC 9457 problem+json bodies, written the same way by handlers and by raw ASGI middleware."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.types import Scope, Send

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://agent-service.dev/problems/"


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
    payload = json.dumps(
        problem_body(status=status, code=code, detail=detail, request_id=request_id_of(scope))
    ).encode()
    raw_headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    await send({"type": f"{prefix}.start", "status": status, "headers": raw_headers})
    await send({"type": f"{prefix}.body", "body": payload})

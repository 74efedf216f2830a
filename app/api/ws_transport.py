"""What every WebSocket endpoint shares: the handshake, frames, shutdown and close codes.

- Handshake: the principal from the authentication middleware, authorised with the same rule
  as HTTP routes (``allowed_caller``); refused with close 1008. Browsers cannot set headers, so the
  token may come as the subprotocol pair ``["bearer", <token>]`` (answered with ``bearer``)
  or a ``?token=`` query parameter (never logged).
- Frames are JSON text objects. A text frame that is not one (not JSON, nested too deep for
  the parser, not an object) gets the endpoint's rejection frame and the socket stays open. A
  binary frame is closed with 1003 (unsupported data). The server closes oversized frames
  with 1009 (``ws_max_size`` = MAX_REQUEST_BODY_BYTES, app/entrypoints/server.py) and text
  that is not UTF-8 with 1007. Never a dropped socket: every refusal is a close frame.
- On server shutdown the client gets ``{"type": "shutdown", ...}`` and close 1012 (reconnect);
  a normal end closes with 1000. Open sockets are counted in ``http_active_streams``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.agents import metrics
from app.api.deps import allowed_caller
from app.core.errors import AppError
from app.core.lifecycle import shutdown
from app.core.problems import send_problem
from app.security.principals import Principal

NORMAL_CLOSURE = 1000
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
SERVICE_RESTART = 1012

SHUTDOWN_FRAME = {
    "type": "shutdown",
    "code": "server_shutdown",
    "message": "The server is restarting; reconnect.",
}


async def authorize_socket(websocket: WebSocket, *, required: frozenset[str]) -> Principal | None:
    """The caller, or None after refusing the handshake (1008)."""
    principal = allowed_caller(websocket, required)
    if principal is None:
        await websocket.close(code=POLICY_VIOLATION, reason="unauthorized")
    return principal


async def refuse_handshake(websocket: WebSocket, error: AppError) -> None:
    """Refuse before accepting with the error's HTTP status and problem+json (close 1008
    where the server lacks the denial-response extension)."""
    await send_problem(
        websocket.send,
        websocket.scope,
        status=error.status,
        code=error.code,
        detail=error.detail,
        headers=error.headers,
    )


async def send_json(websocket: WebSocket, payload: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(payload))


class CloseSocket(Exception):
    """Raised while reading a frame that ends the conversation; serve_socket closes with
    ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_frame(text: str) -> dict[str, Any] | None:
    """A client frame as a JSON object, or None when it is not one."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return None
    return message if isinstance(message, dict) else None


async def receive_frame(websocket: WebSocket) -> dict[str, Any] | None:
    """The next client frame as a JSON object, None when it is text but not one. Raises
    WebSocketDisconnect when the client left, CloseSocket for a binary frame."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise CloseSocket(UNSUPPORTED_DATA, "text frames only")
    return parse_frame(text)


async def serve_socket(websocket: WebSocket, session: Callable[[], Awaitable[None]]) -> None:
    """Accept, run ``session`` until it returns, the client leaves or the server stops, and
    close with the code that says which."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="bearer" if "bearer" in offered else None)
    metrics.ACTIVE_STREAMS.labels("websocket").inc()
    stopping = disconnected = False
    refusal: CloseSocket | None = None
    try:
        async with anyio.create_task_group() as group:

            async def watch_shutdown() -> None:
                # No grace here: uvicorn closes WebSockets (1012) right after this frame's
                # moment (app/entrypoints/server.py), so tell the client at once.
                nonlocal stopping
                await shutdown.wait()
                stopping = True
                group.cancel_scope.cancel()

            async def run_session() -> None:
                await session()
                group.cancel_scope.cancel()

            group.start_soon(watch_shutdown)
            group.start_soon(run_session)
    except* WebSocketDisconnect:
        disconnected = True
    except* CloseSocket as group:
        refusal = next(exc for exc in group.exceptions if isinstance(exc, CloseSocket))
    finally:
        metrics.ACTIVE_STREAMS.labels("websocket").dec()
    if disconnected or websocket.application_state != WebSocketState.CONNECTED:
        return
    if refusal is not None:
        await websocket.close(code=refusal.code, reason=refusal.reason)
        return
    if stopping:
        await send_json(websocket, SHUTDOWN_FRAME)
    await websocket.close(code=SERVICE_RESTART if stopping else NORMAL_CLOSURE)

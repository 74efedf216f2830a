"""What every WebSocket endpoint shares: the handshake, frames, shutdown and close codes.

- Handshake: the principal from the authentication middleware, authorised with the same rule
  as HTTP routes (``authorize``); refused with close 1008. Browsers cannot set headers, so the
  token may come as the subprotocol pair ``["bearer", <token>]`` (answered with ``bearer``)
  or a ``?token=`` query parameter (never logged).
- Frames are JSON objects; anything else gets the endpoint's rejection frame and the socket
  stays open.
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
from app.api.deps import authorize, services_of
from app.core.errors import AppError
from app.core.lifecycle import shutdown
from app.security.principals import Principal

NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
SERVICE_RESTART = 1012

SHUTDOWN_FRAME = {
    "type": "shutdown",
    "code": "server_shutdown",
    "message": "The server is restarting; reconnect.",
}


async def authorize_socket(websocket: WebSocket, *, required: frozenset[str]) -> Principal | None:
    """The caller, or None after refusing the handshake (1008)."""
    try:
        return authorize(
            websocket.scope.get("principal"),
            required=required,
            auth=services_of(websocket).settings.AUTH_ENABLED,
        )
    except AppError:
        await websocket.close(code=POLICY_VIOLATION, reason="unauthorized")
        return None


async def send_json(websocket: WebSocket, payload: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(payload))


def parse_frame(text: str) -> dict[str, Any] | None:
    """A client frame as a JSON object, or None when it is not one."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


async def serve_socket(websocket: WebSocket, session: Callable[[], Awaitable[None]]) -> None:
    """Accept, run ``session`` until it returns, the client leaves or the server stops, and
    close with the code that says which."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="bearer" if "bearer" in offered else None)
    metrics.ACTIVE_STREAMS.labels("websocket").inc()
    stopping = disconnected = False
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
    finally:
        metrics.ACTIVE_STREAMS.labels("websocket").dec()
    if disconnected or websocket.application_state != WebSocketState.CONNECTED:
        return
    if stopping:
        await send_json(websocket, SHUTDOWN_FRAME)
    await websocket.close(code=SERVICE_RESTART if stopping else NORMAL_CLOSURE)

"""WS /v1/agents/{agent}/ws: start runs, receive their events, answer input, cancel.

Protocol (JSON text frames):
  client -> {"type": "start", "input": ..., "session_id"?, "params"?, "max_steps"?}
  server -> every event of the run (same JSON as SSE data), ending with run_completed|error
  client -> {"type": "input", "request_id": ..., "value": ...}   answers input_required
  client -> {"type": "cancel"}                                     cancels the current run
  server -> {"type": "input_rejected", "request_id", "code", "message"}  bad answer, run goes on
One run at a time; after it ends the client may start another on the same socket.
Browsers cannot set headers: the token may come as subprotocols ["bearer", <token>] (answered
with "bearer") or a ?token= query parameter; it is never logged.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from app.agents import metrics
from app.agents.errors import InvalidInput
from app.agents.run import Run
from app.api.deps import websocket_principal
from app.api.run_requests import build_run_request
from app.api.schemas.agents import RunBody
from app.core.errors import AppError
from app.core.lifecycle import shutdown
from app.security.principals import Principal

router = APIRouter(prefix="/agents", tags=["agents"])

POLICY_VIOLATION = 1008
SERVICE_RESTART = 1012


async def _send(websocket: WebSocket, payload: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(payload))


async def _error(websocket: WebSocket, code: str, message: str) -> None:
    await _send(websocket, {"type": "error", "code": code, "message": message})


@router.websocket("/{agent}/ws")
async def agent_socket(websocket: WebSocket, agent: str) -> None:
    principal = websocket_principal(websocket, frozenset({"agents:run"}))
    if principal is None:
        await websocket.close(code=POLICY_VIOLATION, reason="unauthorized")
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="bearer" if "bearer" in offered else None)
    metrics.ACTIVE_STREAMS.labels("websocket").inc()
    stopping = False
    try:
        async with anyio.create_task_group() as group:

            async def watch_shutdown() -> None:
                # No grace here: uvicorn closes WebSockets (1012) right after this frame's
                # moment (app/entrypoints/server.py), so tell the client at once.
                nonlocal stopping
                await shutdown.wait()
                stopping = True
                group.cancel_scope.cancel()

            group.start_soon(watch_shutdown)
            await _session(websocket, agent, principal)
    except* WebSocketDisconnect:
        pass
    finally:
        metrics.ACTIVE_STREAMS.labels("websocket").dec()
    if websocket.application_state == WebSocketState.CONNECTED:
        if stopping:
            await _send(
                websocket,
                {
                    "type": "shutdown",
                    "code": "server_shutdown",
                    "message": "The server is restarting; reconnect.",
                },
            )
        await websocket.close(code=SERVICE_RESTART if stopping else 1000)


async def _session(websocket: WebSocket, agent: str, principal: Principal) -> None:
    services = websocket.app.state.services
    settings = services.settings
    while True:
        message = await _receive_json(websocket)
        if message is None:
            continue
        if message.get("type") != "start":
            await _error(websocket, "bad_message", 'Send {"type": "start", "input": ...}.')
            continue
        try:
            body = RunBody.model_validate({k: v for k, v in message.items() if k != "type"})
            request = build_run_request(
                agent=agent,
                body=body,
                principal=principal,
                settings=settings,
                no_cache=bool(message.get("no_cache")),
            )
            run = await services.runs.start(request)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            await _error(websocket, "validation_error", f"{where}: {first['msg']}")
            continue
        except AppError as exc:
            await _error(websocket, exc.code, exc.detail)
            continue
        await _drive(websocket, run)


async def _receive_json(websocket: WebSocket) -> dict[str, Any] | None:
    text = await websocket.receive_text()
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        await _error(websocket, "bad_message", "Frames must be JSON objects.")
        return None
    return message


async def _drive(websocket: WebSocket, run: Run) -> None:
    """Forward the run's events while reading the client's input/cancel frames."""
    try:
        async with anyio.create_task_group() as group:

            async def read_client() -> None:
                while True:
                    message = await _receive_json(websocket)
                    if message is not None:
                        await _handle_client(websocket, run, message)

            group.start_soon(read_client)
            async for event in run.events():
                await websocket.send_text(event.model_dump_json())
            group.cancel_scope.cancel()
    finally:
        run.cancel("client_disconnected")  # no-op when the run already ended


async def _handle_client(websocket: WebSocket, run: Run, message: dict[str, Any]) -> None:
    kind = message.get("type")
    if kind == "cancel":
        run.cancel("cancelled")
        return
    if kind != "input":
        await _error(websocket, "bad_message", "During a run send 'input' or 'cancel'.")
        return
    request_id = str(message.get("request_id", ""))
    try:
        run.answer(request_id, message.get("value"))
    except KeyError:
        await _reject(
            websocket,
            request_id,
            "input_request_not_found",
            "The run is not waiting for this input request.",
        )
    except InvalidInput as exc:
        await _reject(websocket, request_id, "invalid_input", str(exc))


async def _reject(websocket: WebSocket, request_id: str, code: str, message: str) -> None:
    await _send(
        websocket,
        {"type": "input_rejected", "request_id": request_id, "code": code, "message": message},
    )

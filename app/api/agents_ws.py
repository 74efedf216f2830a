"""WS /v1/agents/{agent}/ws: start runs, receive their events, answer input, cancel.

Protocol (JSON text frames):
  client -> {"type": "start", "input": ..., "session_id"?, "params"?, "max_steps"?}
  server -> every event of the run (same JSON as SSE data), ending with run_completed|error
  client -> {"type": "input", "request_id": ..., "value": ...}   answers input_required
  client -> {"type": "cancel"}                                     cancels the current run
  server -> {"type": "input_rejected", "request_id", "code", "message"}  bad answer, run goes on
One run at a time; after it ends the client may start another on the same socket.
Handshake, credentials, shutdown frame and close codes: app/api/ws_transport.py.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from app.agents.errors import InvalidInput
from app.agents.run import Run
from app.api.deps import services_of
from app.api.run_requests import build_run_request
from app.api.schemas.agents import RunBody
from app.api.ws_transport import authorize_socket, parse_frame, send_json, serve_socket
from app.core.errors import AppError
from app.security.principals import Principal
from app.security.scopes import Scope

router = APIRouter(prefix="/agents", tags=["agents"])


async def _error(websocket: WebSocket, code: str, message: str) -> None:
    await send_json(websocket, {"type": "error", "code": code, "message": message})


@router.websocket("/{agent}/ws")
async def agent_socket(websocket: WebSocket, agent: str) -> None:
    principal = await authorize_socket(websocket, required=frozenset({Scope.AGENTS_RUN}))
    if principal is not None:
        await serve_socket(websocket, lambda: _session(websocket, agent, principal))


async def _session(websocket: WebSocket, agent: str, principal: Principal) -> None:
    services = services_of(websocket)
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
                settings=services.settings,
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
    message = parse_frame(await websocket.receive_text())
    if message is None:
        await _error(websocket, "bad_message", "Frames must be JSON objects.")
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
    await send_json(
        websocket,
        {"type": "input_rejected", "request_id": request_id, "code": code, "message": message},
    )

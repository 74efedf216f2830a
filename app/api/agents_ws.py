"""WS /v1/agents/{agent}/ws: start runs, receive their events, answer input, cancel.

Protocol (JSON text frames):
  client -> {"type": "start", "input": ..., "session_id"?, "params"?, "max_steps"?, "store"?,
             "on_disconnect"?, "if_busy"?}   (the body of POST .../stream)
  server -> every event of the run (same JSON as SSE data), ending with run_completed|error
  client -> {"type": "input", "request_id": ..., "value": ...}   answers input_required
  client -> {"type": "cancel"}                                     cancels the current run
  server -> {"type": "input_rejected", "request_id", "code", "message"}  bad answer, run goes on
One run at a time (MAX_RUNS_PER_SOCKET): a start during a run gets
  server -> {"type": "start_rejected", "code": "too_many_concurrent_runs", "message", "limit"}
and the run goes on; after it ends the client may start another on the same socket.

A run started here costs what POST .../stream costs: each start is charged to that route's
rate-limit bucket for the same principal (else the socket would be a way around it), and the
run holds one of the principal's MAX_CONCURRENT_RUNS_PER_PRINCIPAL slots. A refused start is
  server -> {"type": "error", "code": "rate_limited" | "too_many_concurrent_runs" | ...,
             "message", "retry_after"?, "errors"?}   (errors: an input that does not fit)
and the socket stays open.
Handshake, credentials, shutdown frame and close codes: app/api/ws_transport.py.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from app.agents.errors import InvalidInput
from app.agents.followers import item_json
from app.agents.run import Run
from app.api.deps import services_of
from app.api.run_requests import build_run_request
from app.api.schemas.agents import AgentRunBody
from app.api.ws_transport import authorize_socket, receive_frame, send_json, serve_socket
from app.core.errors import AppError
from app.observability import metrics
from app.security.principals import Principal
from app.security.scopes import Scope
from app.services import AppServices
from app.store.rate_limits import RateLimitBackendDown, bucket_identity

router = APIRouter(prefix="/agents", tags=["agents"])

MAX_RUNS_PER_SOCKET = 1  # the loop below drives one run before it reads the next start
# The route whose rate-limit bucket a start is charged to (app/api/agents.py: stream).
STREAM_ROUTE = "/agents/{agent}/stream"


async def _error(
    websocket: WebSocket,
    code: str,
    message: str,
    *,
    retry_after: int | None = None,
    errors: list[Any] | None = None,
) -> None:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    if errors:
        frame["errors"] = errors
    await send_json(websocket, frame)


async def _refuse(websocket: WebSocket, exc: AppError) -> None:
    retry_after = exc.headers.get("Retry-After")
    await _error(
        websocket,
        exc.code,
        exc.detail,
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
        errors=exc.extensions.get("errors"),  # an input that does not fit the agent's model
    )


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
        run = await _start(websocket, services, agent, principal, message)
        if run is not None:
            await _drive(websocket, run)


async def _start(
    websocket: WebSocket,
    services: AppServices,
    agent: str,
    principal: Principal,
    message: dict[str, Any],
) -> Run | None:
    """The run a start frame asks for, or None after telling the client why not."""
    if not await _charge_start(websocket, services):
        return None
    try:
        body = AgentRunBody.model_validate({k: v for k, v in message.items() if k != "type"})
        request = build_run_request(
            agent=agent,
            body=body,
            principal=principal,
            settings=services.settings,
            no_cache=bool(message.get("no_cache")),
            agents=services.runs.agents,
            loc=("input",),
        )
        return await services.runs.start(request)  # the principal's run cap applies here
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        await _error(websocket, "validation_error", f"{where}: {first['msg']}")
    except AppError as exc:
        await _refuse(websocket, exc)
    return None


async def _charge_start(websocket: WebSocket, services: AppServices) -> bool:
    """Count the start in the stream route's bucket, as the middleware counts a POST there
    (same identity, same limiter); False after sending the refusal."""
    settings = services.settings
    if not settings.RATE_LIMIT_ENABLED:
        return True
    route = settings.API_PREFIX + STREAM_ROUTE
    verified = websocket.scope.get("principal")
    identity = bucket_identity(
        verified.id if verified is not None else None, websocket.scope.get("client")
    )
    try:
        decision = await services.rate_limiter.check(identity=identity, method="POST", route=route)
    except RateLimitBackendDown:  # fail-closed policy and Redis away: as the HTTP route does
        await _error(
            websocket,
            "dependency_unavailable",
            "The rate limiter is unavailable; retry shortly.",
            retry_after=1,
        )
        return False
    if decision.allowed:
        return True
    retry_after = max(1, decision.reset_after)
    metrics.RATE_LIMIT_REJECTIONS.labels(route=route).inc()
    await _error(
        websocket,
        "rate_limited",
        f"Rate limit of {decision.limit} requests exceeded; retry in {retry_after} s.",
        retry_after=retry_after,
    )
    return False


async def _receive_json(websocket: WebSocket) -> dict[str, Any] | None:
    message = await receive_frame(websocket)
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
            async for item in services_of(websocket).runs.follow_started(run):
                await websocket.send_text(item_json(item))
            group.cancel_scope.cancel()
    finally:
        run.disconnected()  # no-op when the run already ended; else as on_disconnect says


async def _handle_client(websocket: WebSocket, run: Run, message: dict[str, Any]) -> None:
    kind = message.get("type")
    if kind == "cancel":
        run.cancel("cancelled")
        return
    if kind == "start":  # not charged: it starts nothing
        await send_json(
            websocket,
            {
                "type": "start_rejected",
                "code": "too_many_concurrent_runs",
                "message": "This socket runs one run at a time: start the next one when this "
                "one has ended (or cancel it), or open another socket.",
                "limit": MAX_RUNS_PER_SOCKET,
            },
        )
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

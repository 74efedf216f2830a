"""OpenAI's Responses API over our runs: POST /v1/responses, GET / cancel / DELETE
/v1/responses/{id}. The runs are the native routes' (same auth, scopes, run slots, cache,
records, events); responses_service.py maps the requests onto them, responses_encoder.py
maps their events onto Responses events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import AgentsRunDep, run_caller_arguments, services_of
from app.api.fast_routes import FastRoute, fast_arguments
from app.api.run_requests import wants_no_cache
from app.api.sse import SSE_EVENT_SCHEMA, EventStreamResponse
from app.protocols.openai.errors import InvalidRequest
from app.protocols.openai.openapi import openai_errors
from app.protocols.openai.responses_encoder import ResponseEncoder
from app.protocols.openai.responses_events import (
    logged_then_live,
    run_to_end,
    started_events,
)
from app.protocols.openai.responses_request import ResponseCreateRequest, parse_body
from app.protocols.openai.responses_service import ResponsesService, Started, head_of
from app.protocols.openai.responses_stream import response_frames, shutdown_frame
from app.protocols.openai.responses_waits import settle

router = APIRouter(tags=["openai"], route_class=FastRoute)

CacheControl = Annotated[str | None, Header(alias="Cache-Control")]
_SHUTDOWN_FRAME = shutdown_frame()
# The query values _flag and _resume_point take (they answer OpenAI's 400 to anything else,
# so the bounds live in the schema only).
_FLAG_SCHEMA = {"pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)?$"}
_SEQUENCE_SCHEMA = {"pattern": "^(-1|[0-9]{1,18})$"}
_STREAM_DOC = {
    "description": "The Response object; with `stream: true` (or GET `?stream=true`) its "
    "events as server-sent events: `event: <type>`, `data: {..., sequence_number}`.",
    "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ResponseCreateRequest.model_json_schema(),
                "example": {"model": "chat", "input": "Hello!"},
            }
        },
    }
}


def _stream(
    http: Request,
    service: ResponsesService,
    started: Started,
    encoder: ResponseEncoder,
    *,
    starting_after: int | None = None,
) -> EventStreamResponse:
    settings = services_of(http).settings
    run = started.run
    if run is not None:
        batches = started_events(service.runs, run)
    else:
        batches = logged_then_live(service.runs, started.run_id, after=started.after)

    def disconnected(reason: str) -> None:
        # Only the client that started a foreground run stops it by leaving; a run waiting
        # for an answer outlives the stream that showed its question.
        if run is not None and not encoder.ended:
            run.disconnected(reason)

    return EventStreamResponse(
        response_frames(encoder, batches, starting_after=starting_after, on_end=_ended(started)),
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=settings.SHUTDOWN_STREAM_GRACE_SECONDS if run else 0,
        on_disconnect=disconnected,
        headers={"X-Run-ID": started.run_id},
        shutdown_frame=_SHUTDOWN_FRAME,
    )


def _ended(started: Started) -> Any:
    def ended(encoder: ResponseEncoder) -> None:
        # Not stored: nobody can answer the question (previous_response_id needs the response).
        if started.run is not None and encoder.question is not None and not started.head.store:
            started.run.cancel("input_required")

    return ended


@router.post(
    "/responses",
    responses={200: _STREAM_DOC, **openai_errors(400, 401, 403, 404, 409, 429)},
    summary="Create a response (run an agent, OpenAI Responses API)",
    openapi_extra=_BODY,
)
@fast_arguments(run_caller_arguments)
async def create_response(
    http: Request, principal: AgentsRunDep, cache_control: CacheControl = None
) -> Response:
    """OpenAI's Responses API: `model` names the agent (GET /v1/models), `input` is the
    user's text or input items (messages, text only), `instructions` a system message for
    this response. Needs `agents:run` (and `tasks:write` with `background`).

    The response is a run: `id` is `resp_<run id>` (GET /v1/runs/{run_id} shows it too).
    `stream: true` streams the Responses events; `background: true` makes it a background
    task (answered at once, `queued`; it survives the client: GET it, or stream it with
    `starting_after`, cancel it). `previous_response_id` continues that response's
    conversation (its run's session). The agent's own tool calls are `mcp_call` output items.

    An agent that asks for human input ends the response `incomplete` with
    `incomplete_details.reason` `input_required` and an `mcp_approval_request` item holding
    the question (`arguments`: prompt, kind, choices). Answer it with a new response whose
    `previous_response_id` names that one and whose `input` is the answer (text, a choice,
    yes/no) or an `mcp_approval_response` item: the same run goes on in the new response.
    `store: false`: no session, and the response cannot be read or continued afterwards.
    """
    services = services_of(http)
    body = parse_body(await http.body())
    service = ResponsesService(services)
    started = await service.create(body, principal, no_cache=wants_no_cache(cache_control))
    encoder = ResponseEncoder(started.head)
    if body.stream:
        return _stream(http, service, started, encoder)
    headers = {"X-Run-ID": started.run_id}
    if body.background:  # answered at once; the task goes on in a worker
        encoder = await service.read(started.head, started.run_id, after=started.after)
        return JSONResponse(encoder.snapshot(), headers=headers)
    run = started.run
    batches = (
        started_events(service.runs, run)
        if run is not None
        else logged_then_live(service.runs, started.run_id, after=started.after)
    )
    finished = False
    try:
        await run_to_end(encoder, batches)
        finished = True
    finally:
        if run is not None and not finished:
            run.disconnected()  # the request was cancelled: so is the run, as it says
    _ended(started)(encoder)
    return JSONResponse(encoder.snapshot(), headers=headers)


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise InvalidRequest(f"{name} must be true or false.", param=(name,))


def _resume_point(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -2
    if not -1 <= number <= 10**18 or not value.strip().lstrip("-").isascii():
        raise InvalidRequest(
            "starting_after must be a sequence_number (an integer).", param=("starting_after",)
        )
    return number


@router.get(
    "/responses/{response_id}",
    responses={200: _STREAM_DOC, **openai_errors(400, 401, 403, 404)},
    summary="Retrieve a response (or stream its events, resumable)",
)
async def get_response(
    response_id: str,
    http: Request,
    principal: AgentsRunDep,
    stream: Annotated[str | None, Query(json_schema_extra=_FLAG_SCHEMA)] = None,
    starting_after: Annotated[str | None, Query(json_schema_extra=_SEQUENCE_SCHEMA)] = None,
) -> Response:
    """The response as it stands: status (`queued`, `in_progress`, `completed`, `failed`,
    `incomplete`, `cancelled`), output, usage. With `stream=true`, its events from the start
    (or after `starting_after`, a `sequence_number`) then live ones until it ends, with the
    numbers they first had: a client that lost its stream resumes without a gap or a
    repeat. Another caller's response, a deleted one or one created with `store: false` is
    404. Needs `agents:run`."""
    wants_stream, after = _flag(stream, "stream"), _resume_point(starting_after)
    service = ResponsesService(services_of(http))
    meta = await service.owned(principal, response_id)
    await service.record(principal, meta)  # its run is gone (retention): 404 too
    if not wants_stream:
        return JSONResponse((await service.logged(meta)).snapshot())
    started = Started(head_of(meta), meta.run_id, meta.after)
    return _stream(http, service, started, ResponseEncoder(started.head), starting_after=after)


@router.post(
    "/responses/{response_id}/cancel",
    responses=openai_errors(401, 403, 404),
    summary="Cancel a response",
)
async def cancel_response(response_id: str, http: Request, principal: AgentsRunDep) -> JSONResponse:
    """Stops the response's run (a background task as DELETE /v1/tasks/{id} does; a
    foreground run from any replica) and answers the response once it has ended (at most a
    few seconds): `cancelled`, or how it ended first. Idempotent. Needs `agents:run` (and
    `tasks:write` for a background response)."""
    service = ResponsesService(services_of(http))
    meta = await service.owned(principal, response_id)
    await service.stop_run(principal, meta)
    return JSONResponse((await settle(service, meta)).snapshot())


@router.delete(
    "/responses/{response_id}",
    responses=openai_errors(401, 403, 404),
    summary="Delete a response",
)
async def delete_response(response_id: str, http: Request, principal: AgentsRunDep) -> JSONResponse:
    """Forgets the response (later reads are 404; it can no longer be continued) and stops
    its run if it still runs. The run's own record stays in GET /v1/runs/{run_id} for its
    retention, as every run's does. Needs `agents:run`."""
    service = ResponsesService(services_of(http))
    meta = await service.owned(principal, response_id)
    await service.delete(principal, meta)
    return JSONResponse({"id": meta.id, "object": "response.deleted", "deleted": True})

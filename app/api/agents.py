"""Agent discovery, invoke (JSON) and stream (SSE): one event stream, two transports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from app.agents.errors import AgentNotFound
from app.agents.events import InputRequired, RunCompleted
from app.agents.protocol import Agent, input_model_of, input_schema_for
from app.agents.run_request import RunRequest
from app.api.deps import (
    AGENTS_RUN,
    AgentsRunDep,
    PrincipalDep,
    RunServiceDep,
    SettingsDep,
    allowed_caller,
    services_of,
)
from app.api.fast_routes import FastRoute, fast_arguments
from app.api.responses import (
    AGENT_NOT_FOUND,
    INVOKE_CONFLICT,
    INVOKE_UNPROCESSABLE,
    RUN_EVENT_STREAM,
    RUN_START_CONFLICT,
    RUN_START_NOT_FOUND,
    RUN_START_UNPROCESSABLE,
    problems,
)
from app.api.run_requests import build_run_request, run_error, wants_no_cache
from app.api.schemas.agents import (
    RUN_BODY_EXAMPLES,
    AgentInfo,
    AgentList,
    AgentRunBody,
    InvokeResponse,
)
from app.api.sse import EventStreamResponse, follow_frames
from app.core.errors import Conflict

# Invoke and stream find their arguments without FastAPI's dependency solving when the
# request is plain (app/api/fast_routes.py); their declared dependencies stay the contract.
router = APIRouter(prefix="/agents", tags=["agents"], route_class=FastRoute)

INVOKE_ERRORS = problems(
    401,
    403,
    502,
    504,
    docs={404: RUN_START_NOT_FOUND, 409: INVOKE_CONFLICT, 422: INVOKE_UNPROCESSABLE},
)
# Once a stream has started its status is 200: later errors arrive as `error` events.
STREAM_ERRORS = problems(
    401,
    403,
    docs={404: RUN_START_NOT_FOUND, 409: RUN_START_CONFLICT, 422: RUN_START_UNPROCESSABLE},
)
RUN_BODY = {"requestBody": {"content": {"application/json": {"examples": RUN_BODY_EXAMPLES}}}}
CacheControl = Annotated[str | None, Header(alias="Cache-Control")]


def _info(agent: Agent) -> AgentInfo:
    model = input_model_of(agent)  # what the input is validated against is what is shown
    return AgentInfo(
        name=agent.name,
        description=agent.description,
        input_schema=agent.input_schema if model is None else input_schema_for(model),
        capabilities=agent.capabilities,
    )


@router.get("", response_model=AgentList, responses=problems(401), summary="List the agents")
async def list_agents(principal: PrincipalDep, runs: RunServiceDep) -> AgentList:
    """Every registered agent: its name (used in the paths below), description, input schema
    and capabilities (`streaming`, `tools`, `human_input`). The input schema says what the
    run body's `input` is: a string, or for an agent with an input model an object with
    its fields. Any authenticated caller, no scope needed; a tenant's principals see the
    agents its policy allows."""
    limits = await runs.limits.of(principal.tenant)
    items = [_info(agent) for agent in runs.agents.all() if limits.allows(agent.name)]
    return AgentList(items=items, total=len(items))


@router.get(
    "/{agent}",
    response_model=AgentInfo,
    responses=problems(401, docs={404: AGENT_NOT_FOUND}),
    summary="Describe one agent",
)
async def get_agent(agent: str, principal: PrincipalDep, runs: RunServiceDep) -> AgentInfo:
    """One agent's description, input schema and capabilities. Any authenticated caller;
    404 `agent_not_found` for a name that is not registered (or that the caller's tenant
    may not use)."""
    if not (await runs.limits.of(principal.tenant)).allows(agent):
        raise AgentNotFound(agent)
    return _info(runs.agents.require(agent))


async def _run_request(
    agent: str,
    body: AgentRunBody,
    principal: AgentsRunDep,
    http: Request,
    cache_control: CacheControl = None,
) -> RunRequest:
    """What invoke and stream both start: the body checked (its input against the agent's),
    the caller, no-cache or not."""
    services = services_of(http)  # not two more dependencies to solve on the hot path
    return build_run_request(
        agent=agent,
        body=body,
        principal=principal,
        settings=services.settings,
        no_cache=wants_no_cache(cache_control),
        agents=services.runs.agents,
    )


RunRequestDep = Annotated[RunRequest, Depends(_run_request)]


def _plain_run_request(request: Request, body: AgentRunBody) -> RunRequest | None:
    """What ``_run_request`` makes, found directly: None when the caller is refused (FastAPI's
    path then answers with the same 401/403)."""
    principal = allowed_caller(request, AGENTS_RUN)
    if principal is None:
        return None
    services = services_of(request)
    return build_run_request(
        agent=request.path_params["agent"],
        body=body,
        principal=principal,
        settings=services.settings,
        no_cache=wants_no_cache(request.headers.get("cache-control")),
        agents=services.runs.agents,
    )


async def _invoke_arguments(
    request: Request, body: AgentRunBody, response: Response
) -> dict[str, Any] | None:
    if (run_request := _plain_run_request(request, body)) is None:
        return None
    agent, runs = request.path_params["agent"], services_of(request).runs
    return {"agent": agent, "request": run_request, "response": response, "runs": runs}


async def _stream_arguments(
    request: Request, body: AgentRunBody, _response: Response
) -> dict[str, Any] | None:
    if (run_request := _plain_run_request(request, body)) is None:
        return None
    services = services_of(request)
    return {"request": run_request, "runs": services.runs, "settings": services.settings}


@router.post(
    "/{agent}/invoke",
    response_model=InvokeResponse,
    responses=INVOKE_ERRORS,
    summary="Run an agent and wait for its answer",
    openapi_extra=RUN_BODY,
)
@fast_arguments(_invoke_arguments)
async def invoke(
    agent: str, request: RunRequestDep, response: Response, runs: RunServiceDep
) -> InvokeResponse:
    """Runs the agent to the end and answers with its output, token usage and timing. Needs
    the `agents:run` scope.

    With `session_id` the agent sees that session's history and the exchange is appended to
    it; without one a new session is started and its id returned (`"store": false`: none).
    One run at a time per session: `if_busy` says what to do when another is running (409
    `session_busy` by default). Every run is kept: GET /v1/runs/{run_id}. Identical
    requests are answered from the LLM cache (`X-Cache: HIT`, `cached: true`);
    `Cache-Control: no-cache` bypasses it (`X-Cache: BYPASS`). Not idempotent: each call is a
    new run. An agent that asks for human input (`approval`) answers 409
    `input_required_unsupported`: use the stream, the WebSocket or a background task. A run
    that fails answers with its error code: 502 for LLM failures, 504 `run_timeout`, 422
    `max_steps_exceeded`, 429 `budget_exceeded`; its `X-Run-ID` header names the run, whose
    record keeps what it produced.
    """
    run = await runs.start(request)
    try:
        # Woken once, by a question or the end, not by each of the run's tokens.
        stop = await run.first_stop()
        if isinstance(stop, InputRequired):
            run.cancel("input_required")
            await run.wait()  # its record says how it ended before the client hears
            raise Conflict(
                "This agent asks for human input: use the stream or WebSocket route, "
                "or a background task.",
                code="input_required_unsupported",
            )
    finally:
        run.disconnected()  # no-op once finished; if we were cancelled, as on_disconnect says
    completed = stop if isinstance(stop, RunCompleted) else None
    if completed is None:
        assert run.error is not None  # noqa: S101 - a run always ends with one of the two
        failure = run_error(run.error)
        failure.headers["X-Run-ID"] = run.run_id  # its record keeps what it produced
        raise failure
    response.headers["X-Cache"] = run.ctx.llm.cache_status
    return InvokeResponse(
        output=completed.output,
        session_id=run.session_id,
        run_id=run.run_id,
        usage=completed.usage,
        cached=completed.cached,
        execution_time=completed.execution_time,
        metadata={"agent": agent, "steps": run.ctx.steps_taken, "llm_calls": run.ctx.llm.calls},
    )


@router.post(
    "/{agent}/stream",
    responses={**STREAM_ERRORS, **RUN_EVENT_STREAM},
    response_class=Response,
    summary="Run an agent and stream its events (SSE)",
    openapi_extra=RUN_BODY,
)
@fast_arguments(_stream_arguments)
async def stream(
    request: RunRequestDep, runs: RunServiceDep, settings: SettingsDep
) -> EventStreamResponse:
    """Starts the run and streams every event as server-sent events: `run_started`, `token`
    deltas, `plan`, `step`, `tool_call`/`tool_result`, `input_required`, and finally
    `run_completed` or `error`. Needs the `agents:run` scope. Same body, sessions and cache
    rules as invoke.

    Problems found before the stream starts (auth, unknown agent or session, validation)
    are problem+json; after that the status is 200 and a failure arrives as an `error`
    event. The `X-Run-ID` header names the run (and `X-Session-ID` its session): answer an
    `input_required` event with POST /v1/runs/{run_id}/input, or cancel with POST
    /v1/runs/{run_id}/cancel, from any replica. Closing the connection cancels the run,
    unless the body says `"on_disconnect": "continue"`: then reconnect to GET
    /v1/runs/{run_id}/events with `Last-Event-ID` and lose nothing.
    """
    run = await runs.start(request)  # errors so far are problem+json, before the stream
    headers = {"X-Run-ID": run.run_id}
    if run.session_id is not None:
        headers["X-Session-ID"] = run.session_id
    return EventStreamResponse(
        follow_frames(runs.follow_batches(run.run_id, after=0, started=run)),
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=settings.SHUTDOWN_STREAM_GRACE_SECONDS,
        on_disconnect=run.disconnected,
        headers=headers,
    )

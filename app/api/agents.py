"""Agent discovery, invoke (JSON) and stream (SSE): one event stream, two transports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from app.agents.events import InputRequired, RunCompleted
from app.agents.protocol import Agent
from app.agents.run import Run
from app.agents.service import RunRequest
from app.api.deps import AgentsRunDep, PrincipalDep, RunServiceDep, SettingsDep
from app.api.responses import problems
from app.api.run_requests import build_run_request, run_error, wants_no_cache
from app.api.schemas.agents import AgentInfo, AgentList, InvokeResponse, RunBody
from app.api.sse import EventStreamResponse, encode_event
from app.core.errors import Conflict, NotFound

router = APIRouter(prefix="/agents", tags=["agents"])

RUN_ERRORS = problems(401, 403, 404, 409, 422, 502, 504)
CacheControl = Annotated[str | None, Header(alias="Cache-Control")]


def _info(agent: Agent) -> AgentInfo:
    return AgentInfo(
        name=agent.name,
        description=agent.description,
        input_schema=agent.input_schema,
        capabilities=agent.capabilities,
    )


@router.get("", response_model=AgentList, responses=problems(401))
async def list_agents(_principal: PrincipalDep, runs: RunServiceDep) -> AgentList:
    items = [_info(agent) for agent in runs.agents.all()]
    return AgentList(items=items, total=len(items))


@router.get("/{agent}", response_model=AgentInfo, responses=problems(401, 404))
async def get_agent(agent: str, _principal: PrincipalDep, runs: RunServiceDep) -> AgentInfo:
    found = runs.agents.get(agent)
    if found is None:
        raise NotFound(f"No agent named {agent!r}.", code="agent_not_found")
    return _info(found)


async def _run_request(
    agent: str,
    body: RunBody,
    principal: AgentsRunDep,
    settings: SettingsDep,
    cache_control: CacheControl = None,
) -> RunRequest:
    """What invoke and stream both start: the body checked, the caller, no-cache or not."""
    return build_run_request(
        agent=agent,
        body=body,
        principal=principal,
        settings=settings,
        no_cache=wants_no_cache(cache_control),
    )


RunRequestDep = Annotated[RunRequest, Depends(_run_request)]


@router.post("/{agent}/invoke", response_model=InvokeResponse, responses=RUN_ERRORS)
async def invoke(
    agent: str, request: RunRequestDep, response: Response, runs: RunServiceDep
) -> InvokeResponse:
    run = await runs.start(request)
    completed: RunCompleted | None = None
    try:
        async for event in run.events():
            if isinstance(event, InputRequired):
                run.cancel("input_required")
                raise Conflict(
                    "This agent asks for human input: use the stream or WebSocket route, "
                    "or a background task.",
                    code="input_required_unsupported",
                )
            if isinstance(event, RunCompleted):
                completed = event
    finally:
        run.cancel("client_disconnected")  # no-op once finished; stops it if we were cancelled
    if completed is None:
        assert run.error is not None  # noqa: S101 - a run always ends with one of the two
        raise run_error(run.error)
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


async def _frames(run: Run) -> AsyncIterator[bytes]:
    async for event in run.events():
        yield encode_event(event)


@router.post(
    "/{agent}/stream",
    responses={
        **RUN_ERRORS,
        200: {"description": "Server-sent events", "content": {"text/event-stream": {}}},
    },
    response_class=Response,
)
async def stream(
    request: RunRequestDep, runs: RunServiceDep, settings: SettingsDep
) -> EventStreamResponse:
    run = await runs.start(request)  # errors so far are problem+json, before the stream
    return EventStreamResponse(
        _frames(run),
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=settings.SHUTDOWN_STREAM_GRACE_SECONDS,
        on_disconnect=run.cancel,
        headers={"X-Run-ID": run.run_id},
    )

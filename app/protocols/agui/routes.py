"""AG-UI routes: run an agent from a RunAgentInput, and reconnect to a run's stream.

Problems found before a stream starts (auth, scope, rate limit, a body that is not a
RunAgentInput, an unknown agent, another principal's thread, a busy thread) are problem+json
with their HTTP status, as on the native stream route. Inputs that break AG-UI's interrupt
contract, and the run's own failures, are AG-UI's RUN_ERROR events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any

from ag_ui.core import RunAgentInput
from fastapi import APIRouter, Header, Query, Request, Response

from app.agents.control_bus import ControlRequest
from app.agents.service import RunService
from app.api.deps import AgentsRunDep, RunServiceDep, services_of
from app.api.responses import Responses, problems
from app.api.run_requests import build_run_request, wants_no_cache
from app.api.runs import RunId
from app.api.sse import SSE_EVENT_SCHEMA, EventStreamResponse
from app.api.tasks import ResumePoint
from app.core.errors import AppError, NotFound
from app.protocols.agui.event_mapping import AguiEvents, run_error
from app.protocols.agui.input_mapping import STATE_NAME, check_thread_id, map_input
from app.protocols.agui.resume import ResumeRefused, apply, find_target
from app.protocols.agui.stream import Replay, encode, segment_frames, single
from app.security.principals import Principal

router = APIRouter(tags=["ag-ui"])
CacheControl = Annotated[str | None, Header(alias="Cache-Control")]
AGUI_STREAM: Responses = {
    200: {
        "description": "AG-UI events as server-sent events (`data: <event JSON>`); the last "
        "frame of each of our events carries `id: <seq>` for reconnecting.",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


def _response(
    frames: AsyncGenerator[bytes, None],
    http: Request,
    *,
    on_disconnect: Callable[[str], None] | None = None,
    headers: dict[str, str] | None = None,
) -> EventStreamResponse:
    settings = services_of(http).settings
    return EventStreamResponse(
        frames,
        keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
        shutdown_grace_seconds=settings.SHUTDOWN_STREAM_GRACE_SECONDS,
        on_disconnect=on_disconnect or _stay,
        headers=headers,
    )


def _stay(reason: str) -> None:
    """Reading a run never changes it."""


def _refusal(http: Request, code: str, message: str) -> EventStreamResponse:
    return _response(single(encode([run_error(message, code)])), http)


@router.post(
    "/agents/{agent}/ag-ui",
    responses={**problems(401, 403, 404, 409, 422, 429), **AGUI_STREAM},
    response_class=Response,
    summary="Run an agent over AG-UI (RunAgentInput in, AG-UI events out)",
)
async def agui_run(
    agent: str,
    agui: RunAgentInput,
    principal: AgentsRunDep,
    runs: RunServiceDep,
    http: Request,
    cache_control: CacheControl = None,
) -> EventStreamResponse:
    """AG-UI's HTTP binding: the body is a `RunAgentInput`, the answer an SSE stream of
    AG-UI events (`RUN_STARTED`, `TEXT_MESSAGE_*`, `TOOL_CALL_*`, `STEP_*`, `STATE_DELTA`,
    `RUN_FINISHED` or `RUN_ERROR`). `threadId` is the session (created for the caller on
    first use, then readable at GET /v1/sessions/{threadId}); the last message is the
    input; earlier messages are the history. A question the agent asks ends the AG-UI run
    with an interrupt outcome; the next input answers it with `resume`. Closing the stream
    cancels the run. Reconnect with GET /v1/agents/{agent}/ag-ui/runs/{run_id}. Needs the
    `agents:run` scope."""
    check_thread_id(agui.thread_id)
    if agui.resume:
        return await _resume(agent, agui, principal, runs, http)
    services = services_of(http)
    settings = services.settings
    mapped = map_input(agui, max_context_chars=settings.MAX_INPUT_CHARS)
    request = build_run_request(
        agent=agent,
        body=mapped.body,
        principal=principal,
        settings=settings,
        no_cache=wants_no_cache(cache_control),
        agents=runs.agents,
        loc=("body", "messages"),
    )
    sessions = services.sessions
    await sessions.open_with_id(owner=principal, session_id=agui.thread_id, agent=agent)
    history = mapped.history
    if mapped.context is not None:
        if history is None:  # the thread's own history, after the context
            history = await sessions.store.messages(
                agui.thread_id, limit=settings.SESSION_MAX_MESSAGES, offset=0
            )
        history = [mapped.context, *history]
    if mapped.state is not None:
        await sessions.state.save(agui.thread_id, STATE_NAME, mapped.state)
    request = replace(request, session_id=agui.thread_id, history=history)
    try:
        run = await runs.start(request)
    except AppError as exc:
        if exc.code == "session_busy" and await _waiting_for_input(runs, principal, agui):
            return _refusal(
                http,
                "interrupt_pending",
                "This thread's run is waiting for an answer: send `resume` for its interrupt.",
            )
        raise
    mapper = AguiEvents(
        thread_id=agui.thread_id,
        run_id=run.run_id,
        agui_run_id=agui.run_id,
        input_timeout_seconds=settings.INPUT_TIMEOUT_SECONDS,
    )
    batches = runs.follow_batches(run.run_id, after=0, started=run)
    return _response(
        segment_frames(batches, mapper),
        http,
        on_disconnect=run.disconnected,
        headers={"X-Run-ID": run.run_id, "X-Session-ID": agui.thread_id},
    )


async def _waiting_for_input(runs: RunService, principal: Principal, agui: RunAgentInput) -> bool:
    """The thread is busy because its run waits for an answer (AG-UI: a pending interrupt)."""
    runs_of_thread, _ = await runs.list(
        owner=principal, session_id=agui.thread_id, status="input_required", limit=1, offset=0
    )
    return bool(runs_of_thread)


async def _resume(
    agent: str, agui: RunAgentInput, principal: Principal, runs: RunService, http: Request
) -> EventStreamResponse:
    try:
        target = await find_target(agui, principal=principal, runs=runs)
        mapper = AguiEvents(
            thread_id=agui.thread_id,
            run_id=target.run_id,
            agui_run_id=agui.run_id,
            input_timeout_seconds=services_of(http).settings.INPUT_TIMEOUT_SECONDS,
        )
        replay = Replay(runs, mapper, target.run_id)
        if not await replay.until_question(target.request_id):
            raise ResumeRefused(
                "interrupt_not_found", f"No open interrupt {target.entry.interrupt_id!r}."
            )
        await apply(target, principal=principal, runs=runs)
    except ResumeRefused as refused:
        return _refusal(http, refused.code, refused.message)

    def disconnected(reason: str) -> None:  # closing the stream cancels the run, as on POST
        cancel = ControlRequest(
            run_id=target.run_id, principal_id=principal.id, action="cancel", reason=reason
        )
        if runs.apply_locally(cancel) is None:
            _background(runs.control(cancel))

    batches = runs.follow_batches(target.run_id, after=replay.seq)
    return _response(
        segment_frames(batches, mapper, first=encode(mapper.start_segment())),
        http,
        on_disconnect=disconnected,
        headers={"X-Run-ID": target.run_id, "X-Session-ID": agui.thread_id},
    )


_pending: set[asyncio.Task[None]] = set()


def _background(work: Coroutine[Any, Any, None]) -> None:
    async def run() -> None:
        try:
            await work
        except AppError:
            pass  # it has ended already

    task = asyncio.get_running_loop().create_task(run())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


@router.get(
    "/agents/{agent}/ag-ui/runs/{run_id}",
    responses={**problems(401, 403, 404, 422), **AGUI_STREAM},
    response_class=Response,
    summary="Reconnect to a run's AG-UI stream (resumable with Last-Event-ID)",
)
async def agui_reconnect(
    agent: str,
    run_id: RunId,
    principal: AgentsRunDep,
    runs: RunServiceDep,
    http: Request,
    after: ResumePoint = 0,
    agui_run_id: Annotated[
        str | None,
        Query(max_length=200, description="The AG-UI runId to put in RUN_STARTED/FINISHED."),
    ] = None,
) -> EventStreamResponse:
    """The AG-UI stream of a run (its `X-Run-ID`, or `metadata["agent-service"].runId` of
    RUN_STARTED) after the frame id in `Last-Event-ID` (or `?after=`): exactly what the
    stream would have sent after it, then live events, to the end of the AG-UI run (an
    interrupt, or the run's end). From the start without one. Reading never changes the
    run. Another caller's run is 404 `run_not_found`. Needs the `agents:run` scope."""
    record = await runs.get(owner=principal, run_id=run_id)
    if record.agent != agent:
        raise NotFound("No run with this id.", code="run_not_found")
    mapper = AguiEvents(
        thread_id=record.session_id or "",
        run_id=run_id,
        agui_run_id=agui_run_id or run_id,
        input_timeout_seconds=services_of(http).settings.INPUT_TIMEOUT_SECONDS,
    )
    replay = Replay(runs, mapper, run_id)
    await replay.until_seq(after)
    if replay.run_ended:
        return _response(single(b""), http)
    first = encode(mapper.start_segment()) if after and not mapper.segment_open else b""
    batches = runs.follow_batches(run_id, after=after)
    return _response(segment_frames(batches, mapper, first=first), http)

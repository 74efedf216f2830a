"""POST /v1/chat/completions: OpenAI's Chat Completions over our runs.

``model`` names the agent; the last user message is the run's input, the earlier messages its
history (or a session's, with the ``session_id`` extension). The run is the same as the
native routes start (RunService.start: auth, scopes, run slots, cache, record, events); only
the framing differs: one ``chat.completion`` object (chat_completion.py), or
``chat.completion.chunk`` server-sent events ending ``data: [DONE]`` (chat_stream.py).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from app.agents.events import InputRequired, RunCompleted
from app.api.deps import AgentsRunDep, run_caller_arguments, services_of
from app.api.fast_routes import FastRoute, fast_arguments
from app.api.run_requests import wants_no_cache
from app.api.sse import SSE_EVENT_SCHEMA, EventStreamResponse
from app.protocols.openai.chat_completion import (
    completion_of,
    failed,
    follow_to_end,
    input_required,
)
from app.protocols.openai.chat_request import build_chat_run, parse_body
from app.protocols.openai.chat_schemas import ChatCompletion, ChatCompletionRequest
from app.protocols.openai.chat_stream import ChunkEncoder, chunk_frames, shutdown_frame
from app.protocols.openai.openapi import openai_errors

router = APIRouter(tags=["openai"], route_class=FastRoute)

CacheControl = Annotated[str | None, Header(alias="Cache-Control")]
_SHUTDOWN_FRAME = shutdown_frame()

_STREAM_DOC = {
    "description": "With `stream: true`: `chat.completion.chunk` server-sent events, each "
    "`data: {...}`, ending with `data: [DONE]`.",
    "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: _STREAM_DOC, **openai_errors(400, 401, 403, 404, 409, 429, 502, 504)},
    summary="Run an agent as an OpenAI chat completion",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"},
                    "example": {
                        "model": "chat",
                        "messages": [{"role": "user", "content": "Hello!"}],
                    },
                }
            },
        }
    },
)
@fast_arguments(run_caller_arguments)
async def chat_completions(
    http: Request, principal: AgentsRunDep, cache_control: CacheControl = None
) -> Response:
    """OpenAI's Chat Completions API: point any OpenAI client at `{base}/v1` with one of
    our API keys (or a JWT) as its key. Needs the `agents:run` scope.

    `model` is the agent's name (GET /v1/models). The last message must be the user's: it is
    the run's input; the earlier messages are its history (at most SESSION_MAX_MESSAGES of
    them). Stateless, as OpenAI's API is: no session is started. Extension: `session_id`
    (the SDK's `extra_body`) continues a session of the caller's; `messages` then holds only
    the new user message. `temperature` and `max_tokens` / `max_completion_tokens` reach
    the agent as its run params; other generation parameters are ignored; client-side
    `tools` and `n` > 1 are refused (400).

    The answer names its run: `id` is `chatcmpl-<run id>`, the extension `agent_run` holds
    the run id, the session id and the tool calls the agent made itself (`steps`, never
    `tool_calls` for the client to run); headers `X-Run-ID`, `X-Session-ID`, `X-Cache`.
    With `stream: true` the answer is `chat.completion.chunk` events ending in
    `data: [DONE]`; `stream_options.include_usage` adds a last chunk with the usage.

    An agent that asks for human input ends the completion with error code
    `input_required` (409, or an error event when streaming) naming the run and the
    question; the run waits for the answer at POST /v1/runs/{run_id}/input. Errors are
    OpenAI's `{"error": {message, type, param, code}}`.
    """
    services = services_of(http)
    settings = services.settings
    body = parse_body(await http.body())
    request = build_chat_run(
        body,
        principal=principal,
        settings=settings,
        agents=services.runs.agents,
        no_cache=wants_no_cache(cache_control),
    )
    runs = services.runs
    run = await runs.start(request)  # errors so far are answered before any frame
    created = int(time.time())
    headers = {"X-Run-ID": run.run_id}
    if run.session_id is not None:
        headers["X-Session-ID"] = run.session_id
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        encoder = ChunkEncoder(
            completion_id=f"chatcmpl-{run.run_id}",
            created=created,
            model=run.agent.name,
            include_usage=include_usage,
        )
        waiting = False  # the run asked for input: it outlives this stream

        def handed_off() -> None:
            nonlocal waiting
            waiting = True

        def disconnected(reason: str) -> None:
            if not waiting:
                run.disconnected(reason)

        frames = chunk_frames(
            runs.follow_batches(run.run_id, after=0, started=run),
            encoder,
            run_id=run.run_id,
            session_id=run.session_id,
            prefix=settings.API_PREFIX,
            handed_off=handed_off,
        )
        return EventStreamResponse(
            frames,
            keepalive_seconds=settings.SSE_KEEPALIVE_SECONDS,
            shutdown_grace_seconds=settings.SHUTDOWN_STREAM_GRACE_SECONDS,
            on_disconnect=disconnected,
            headers=headers,
            shutdown_frame=_SHUTDOWN_FRAME,
        )
    waiting = False
    try:
        ending, steps = await follow_to_end(run, runs)
        if isinstance(ending, InputRequired):
            waiting = True
            raise input_required(ending, run, settings.API_PREFIX)
    finally:
        if not waiting:
            run.disconnected()  # no-op once finished; if we were cancelled, the run stops
    if not isinstance(ending, RunCompleted):
        raise failed(ending, run.run_id)
    completion = completion_of(run, ending, steps, model=run.agent.name, created=created)
    headers["X-Cache"] = run.ctx.llm.cache_status
    content: dict[str, Any] = completion.model_dump(mode="json")
    return JSONResponse(content, headers=headers)


# The request body's schema, referenced by the route's openapi_extra above (the body is
# parsed by hand, so FastAPI does not add it itself).
REQUEST_SCHEMAS = (ChatCompletionRequest,)

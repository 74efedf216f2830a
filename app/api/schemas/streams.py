"""What the two server-sent event routes send, for OpenAPI: the ``data`` of every frame.

Documentation only. The agent events themselves live in app/agents/events.py; the stream
adds two notices of its own: ``shutdown`` (app/api/sse.py) and ``events_missed``
(TaskService.follow).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from app.agents.events import (
    ErrorEvent,
    InputRequired,
    LogEvent,
    MemorySummaryEvent,
    MessageEvent,
    PlanEvent,
    RunCompleted,
    RunStarted,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.followers import EventsMissed


class ShutdownNotice(BaseModel):
    """The last frame when the server stops before the stream ended (``event: shutdown``,
    ``retry: 1000``, no ``id``). A run stream gets it after the shutdown grace; a task event
    stream at once, since the task goes on: reconnect with Last-Event-ID to resume."""

    type: Literal["shutdown"]
    code: Literal["server_shutdown"]
    message: str


RunStreamEvent = Annotated[
    RunStarted
    | TokenEvent
    | MessageEvent
    | ToolCallEvent
    | ToolResultEvent
    | StepEvent
    | PlanEvent
    | MemorySummaryEvent
    | LogEvent
    | InputRequired
    | ErrorEvent
    | RunCompleted
    | ShutdownNotice,
    Field(discriminator="type"),
]

TaskStreamEvent = Annotated[
    RunStarted
    | TokenEvent
    | MessageEvent
    | ToolCallEvent
    | ToolResultEvent
    | StepEvent
    | PlanEvent
    | MemorySummaryEvent
    | LogEvent
    | InputRequired
    | ErrorEvent
    | RunCompleted
    | EventsMissed
    | ShutdownNotice,
    Field(discriminator="type"),
]

RUN_STREAM_ADAPTER: TypeAdapter[RunStreamEvent] = TypeAdapter(RunStreamEvent)
TASK_STREAM_ADAPTER: TypeAdapter[TaskStreamEvent] = TypeAdapter(TaskStreamEvent)

_FRAMING = (
    "Server-sent events (text/event-stream). Each frame is `id: <seq>`, `event: <type>` and "
    "one `data:` line holding the JSON object described by the schema (its `type` equals the "
    "`event` name). Every {keepalive} a `: keep-alive` comment line keeps idle connections "
    "and proxies open; ignore it. Headers: `Cache-Control: no-cache`, "
    "`X-Accel-Buffering: no`."
)

RUN_STREAM_DESCRIPTION = (
    _FRAMING.format(keepalive="SSE_KEEPALIVE_SECONDS (15 s by default)")
    + " The stream starts with `run_started` and ends after `run_completed` or `error`; an "
    "error after the stream started arrives in-band as an `error` event (the status is "
    "already 200). `X-Run-ID` names the run, for POST /v1/runs/{run_id}/input and /cancel. "
    'Closing the connection cancels the run, unless the body said `"on_disconnect": '
    '"continue"`: then GET /v1/runs/{run_id}/events with `Last-Event-ID` resumes it '
    "exactly (`id` is the run-wide sequence number). When the server stops, the run gets "
    "SHUTDOWN_STREAM_GRACE_SECONDS to finish, then a `shutdown` frame ends the stream."
)

TASK_STREAM_DESCRIPTION = (
    _FRAMING.format(keepalive="SSE_KEEPALIVE_SECONDS (15 s by default)")
    + " `id` is the task-wide sequence number: reconnect with `Last-Event-ID` (or `?after=`) "
    "to resume exactly after the last frame seen. Replays every kept event, then follows "
    "live ones, and ends after the task's final `run_completed` or `error`. Closing the "
    "connection does not affect the task. When the server stops, a `shutdown` frame (with "
    "`retry: 1000`) tells the client to reconnect, to this or another replica."
)

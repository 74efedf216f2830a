"""A tools/call of an agent, run as one of our foreground runs: same RunService.start as
invoke and stream (records, metrics, the principal's concurrency cap, the LLM cache), its
events streamed to the client as progress notifications, its questions asked as elicitations,
its answer returned as the tool result.

The run belongs to the request: when the request ends early (notifications/cancelled, the
session deleted, the transport closed) the handler is cancelled and so is the run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

from mcp import types
from mcp.server.session import ServerSession
from pydantic import ValidationError

from app.agents.control_bus import ControlRequest
from app.agents.events import TERMINAL_TYPES, ErrorEvent, Event, InputRequired, RunCompleted
from app.agents.feed import LoggedEvent
from app.agents.followers import FollowItem
from app.agents.run_request import RunRequest
from app.api.run_requests import build_run_request
from app.api.schemas.agents import AgentRunBody, RunBody
from app.core.errors import Unprocessable
from app.protocols.mcp.caller import Caller
from app.protocols.mcp.elicitation import NoAnswer, ask_client
from app.protocols.mcp.progress import ProgressReporter

ARGUMENTS_INPUT = ("arguments", "input")
Question = Callable[[InputRequired], Awaitable[None]]


def run_body(arguments: Mapping[str, Any], model: type[RunBody] = AgentRunBody) -> RunBody:
    """The tool's arguments as a run body. MCP tool calls keep no session: the client holds
    the conversation, so every call is a fresh run (``store: false``)."""
    fields: dict[str, Any] = {"input": arguments.get("input")}
    if model is AgentRunBody:
        fields["store"] = False
    try:
        return model(**fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        raise Unprocessable(f"arguments.input: {error['msg']}", code="validation_error") from None


def run_request(caller: Caller, agent: str, arguments: Mapping[str, Any]) -> RunRequest:
    return build_run_request(
        agent=agent,
        body=run_body(arguments),
        principal=caller.principal,
        settings=caller.settings,
        no_cache=False,
        agents=caller.services.runs.agents,
        loc=ARGUMENTS_INPUT,
    )


async def follow_to_end(
    batches: AsyncGenerator[list[FollowItem], None],
    *,
    progress: ProgressReporter,
    on_question: Question,
) -> Event | None:
    """Report every batch, answer every question, return the terminal event (None: the
    stream ended without one, as a record that was ended from outside)."""
    async with aclosing(batches):
        async for batch in batches:
            events = [item.event for item in batch if isinstance(item, LoggedEvent)]
            await progress.report(events)
            for event in events:
                if isinstance(event, InputRequired):
                    await on_question(event)
                elif event.type in TERMINAL_TYPES:
                    return event
    return None


def completed_result(event: RunCompleted, run_id: str) -> types.CallToolResult:
    structured = {
        "output": event.output,
        "run_id": run_id,
        "usage": event.usage.model_dump(),
        "cached": event.cached,
        "execution_time": event.execution_time,
    }
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=event.output)],
        structuredContent=structured,
    )


def failed_result(code: str, message: str, run_id: str | None = None) -> types.CallToolResult:
    where = f", run {run_id}" if run_id else ""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{message} ({code}{where})")],
        isError=True,
    )


def ending_result(event: Event | None, run_id: str) -> types.CallToolResult:
    if isinstance(event, RunCompleted):
        return completed_result(event, run_id)
    if isinstance(event, ErrorEvent):
        return failed_result(event.code, event.message, run_id)
    return failed_result("run_lost", "The run ended without an answer.", run_id)


async def call_agent(
    caller: Caller,
    agent: str,
    arguments: Mapping[str, Any],
    *,
    session: ServerSession,
    request_id: types.RequestId,
    progress_token: types.ProgressToken | None,
) -> types.CallToolResult:
    runs = caller.services.runs
    run = await runs.start(run_request(caller, agent, arguments))

    async def answer(event: InputRequired) -> None:
        value = await ask_client(session, event, related_request_id=request_id)
        await runs.control(
            ControlRequest(
                run_id=run.run_id,
                principal_id=caller.principal.id,
                action="input",
                request_id=event.request_id,
                value=value,
            )
        )

    reason = "cancelled"  # the client cancelled, or its session or connection ended
    try:
        ending = await follow_to_end(
            runs.follow_batches(run.run_id, after=0, started=run),
            progress=ProgressReporter(session, progress_token, request_id),
            on_question=answer,
        )
    except NoAnswer as exc:
        reason = "input_required"
        return failed_result(exc.code, exc.detail, run.run_id)
    finally:
        run.cancel(reason)  # nothing once the run has ended
    return ending_result(ending, run.run_id)


async def call_registered_tool(
    caller: Caller, name: str, arguments: dict[str, Any]
) -> types.CallToolResult:
    """A registered tool called directly (MCP_EXPOSE_TOOLS): its registry's timeout and error
    handling, no run (a tool call is not an agent's turn)."""
    outcome = await caller.services.runs.tools.call(name, arguments)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outcome.output)], isError=not outcome.success
    )

"""The MCP server: the SDK's low-level Server with our handlers. tools/list shows the agents
(and, with MCP_EXPOSE_TOOLS, the registered tools); tools/call runs one (runs.py), or, when
the call is task-augmented, submits it as a background task (tasks.py); tasks/* read them.

Errors: an AppError while calling a tool is a tool error (``isError``, the message and code
as text, which the model can read); in tasks/* it is a JSON-RPC error. Nothing else reaches
the client: the SDK turns an unexpected exception in a tool into a tool error too.
"""

from __future__ import annotations

import warnings
from typing import Any

from mcp import types
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import McpError

from app.core.config import Settings
from app.core.errors import AppError
from app.protocols.mcp import runs, tasks
from app.protocols.mcp.caller import current_caller
from app.protocols.mcp.catalog import catalog, registered_tool_name
from app.security.scopes import Scope

INSTRUCTIONS = (
    "Each tool runs one of this service's agents on {'input': ...} and returns its answer; "
    "progress notifications carry its tokens and steps. Long runs may be called as tasks."
)


def mcp_error(exc: AppError) -> McpError:
    """An AppError as a JSON-RPC error: a missing or foreign object or a bad value is the
    caller's parameter (-32602), anything else an invalid request or a server failure."""
    if exc.status in (404, 422):
        code = types.INVALID_PARAMS
    elif exc.status < 500:
        code = types.INVALID_REQUEST
    else:
        code = types.INTERNAL_ERROR
    return McpError(types.ErrorData(code=code, message=f"{exc.detail} ({exc.code})"))


def build_server(settings: Settings) -> Server[Any, Any]:
    server: Server[Any, Any] = Server(
        "agent-service", version=settings.API_VERSION, instructions=INSTRUCTIONS
    )

    # The SDK's decorators are untyped; the handlers' own signatures are what is checked.
    @server.list_tools()  # type: ignore[no-untyped-call, untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        caller = current_caller()
        return catalog(caller.services.runs, expose_tools=caller.settings.MCP_EXPOSE_TOOLS)

    @server.call_tool()  # type: ignore[untyped-decorator]
    async def call_tool(
        name: str, arguments: dict[str, Any]
    ) -> types.CallToolResult | types.CreateTaskResult:
        try:
            return await _call(server, name, arguments)
        except AppError as exc:
            return runs.failed_result(exc.code, exc.detail)

    _register_tasks(server)
    return server


async def _call(
    server: Server[Any, Any], name: str, arguments: dict[str, Any]
) -> types.CallToolResult | types.CreateTaskResult:
    ctx = server.request_context
    caller = current_caller(Scope.AGENTS_RUN)
    if caller.services.runs.agents.get(name) is not None:
        if ctx.experimental.is_task:
            return await tasks.submit(
                current_caller(Scope.AGENTS_RUN, Scope.TASKS_WRITE), name, arguments
            )
        return await runs.call_agent(
            caller,
            name,
            arguments,
            session=ctx.session,
            request_id=ctx.request_id,
            progress_token=ctx.meta.progressToken if ctx.meta else None,
        )
    tool = registered_tool_name(name)
    if (
        tool is not None
        and caller.settings.MCP_EXPOSE_TOOLS
        and caller.services.runs.tools.get(tool)
    ):
        return await runs.call_registered_tool(caller, tool, arguments)
    return runs.failed_result("tool_not_found", f"No tool named {name!r}: see tools/list.")


def _register_tasks(server: Server[Any, Any]) -> None:
    # The SDK marks its tasks API deprecated (tasks are expected to move to an MCP extension);
    # the 2025-11-25 protocol has them, so they are served, and the warning is not news.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        experimental = server.experimental

    @experimental.get_task()
    async def get_task(request: types.GetTaskRequest) -> types.GetTaskResult:
        try:
            return await tasks.get(current_caller(Scope.TASKS_READ), request.params.taskId)
        except AppError as exc:
            raise mcp_error(exc) from None

    @experimental.get_task_result()
    async def get_task_result(request: types.GetTaskPayloadRequest) -> types.GetTaskPayloadResult:
        ctx = server.request_context
        try:
            outcome = await tasks.result(
                current_caller(Scope.TASKS_READ),
                request.params.taskId,
                session=ctx.session,
                request_id=ctx.request_id,
                progress_token=ctx.meta.progressToken if ctx.meta else None,
            )
        except AppError as exc:
            raise mcp_error(exc) from None
        # The payload has the shape of the call's own result (a CallToolResult).
        return types.GetTaskPayloadResult.model_validate(outcome.model_dump(by_alias=True))

    @experimental.list_tasks()
    async def list_tasks(request: types.ListTasksRequest) -> types.ListTasksResult:
        cursor = request.params.cursor if request.params else None
        try:
            return await tasks.page(current_caller(Scope.TASKS_READ), cursor)
        except AppError as exc:
            raise mcp_error(exc) from None

    @experimental.cancel_task()
    async def cancel_task(request: types.CancelTaskRequest) -> types.CancelTaskResult:
        try:
            return await tasks.cancel(current_caller(Scope.TASKS_WRITE), request.params.taskId)
        except AppError as exc:
            raise mcp_error(exc) from None

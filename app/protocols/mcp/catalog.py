"""What tools/list shows: every agent as a tool (its input schema is the run body's ``input``
as GET /v1/agents shows it), and with MCP_EXPOSE_TOOLS the registered tools as ``tool_<name>``.

Agent names cannot contain upper case or dots, and some clients refuse dots in tool names, so
registered tools get a prefix rather than a namespace; an agent that already holds the prefixed
name keeps it (the tool is left out, with a warning when listed).
"""

from __future__ import annotations

from typing import Any

import structlog
from mcp import types

from app.agents.protocol import Agent, input_model_of, input_schema_for
from app.agents.service import RunService
from app.agents.tools.registry import Tool

log = structlog.get_logger(__name__)

TOOL_PREFIX = "tool_"

# structuredContent of an agent tool's result: the run's answer and where to find the run.
RUN_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "output": {"type": "string", "description": "The agent's answer."},
        "run_id": {"type": "string", "description": "GET /v1/runs/{run_id} reads the record."},
        "usage": {
            "type": "object",
            "properties": {
                "prompt_tokens": {"type": "integer"},
                "completion_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
            },
        },
        "cached": {"type": "boolean"},
        "execution_time": {"type": "number"},
    },
    "required": ["output", "run_id"],
}


def agent_input_schema(agent: Agent) -> dict[str, Any]:
    model = input_model_of(agent)
    return agent.input_schema if model is None else input_schema_for(model)


def agent_tool(agent: Agent) -> types.Tool:
    human = agent.capabilities.human_input
    return types.Tool(
        name=agent.name,
        title=agent.name,
        description=agent.description
        + (" Asks the user for input while it runs (MCP elicitation)." if human else ""),
        inputSchema=agent_input_schema(agent),
        outputSchema=RUN_OUTPUT_SCHEMA,
        # A run may take long: a client that speaks MCP Tasks may run it as one.
        execution=types.ToolExecution(taskSupport=types.TASK_OPTIONAL),
        annotations=types.ToolAnnotations(readOnlyHint=False, openWorldHint=True),
    )


def registry_tool(tool: Tool) -> types.Tool:
    return types.Tool(
        name=TOOL_PREFIX + tool.name,
        title=tool.name,
        description=tool.description,
        inputSchema=tool.parameters,
    )


def catalog(runs: RunService, *, expose_tools: bool) -> list[types.Tool]:
    tools = [agent_tool(agent) for agent in runs.agents.all()]
    if expose_tools:
        taken = {tool.name for tool in tools}
        for tool in runs.tools.all():
            listed = registry_tool(tool)
            if listed.name in taken:
                log.warning("mcp_tool_name_taken", tool=tool.name, name=listed.name)
                continue
            tools.append(listed)
    return tools


def registered_tool_name(name: str) -> str | None:
    """The registry name behind a listed ``tool_<name>``; None for any other name."""
    return name.removeprefix(TOOL_PREFIX) if name.startswith(TOOL_PREFIX) else None

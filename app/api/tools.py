"""GET /v1/tools: the registered tools with their JSON schemas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import PrincipalDep, RunServiceDep
from app.api.responses import problems
from app.api.schemas.agents import ToolInfo, ToolList

router = APIRouter(prefix="/tools", tags=["tools"])


@router.get(
    "", response_model=ToolList, responses=problems(401), summary="List the tools agents can call"
)
async def list_tools(
    _principal: PrincipalDep,
    runs: RunServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ToolList:
    """The registered tools (built in: `calculator`, `current_time`) with the JSON schema
    of their arguments, one page at a time. Agents with the `tools` capability (such as
    `assistant`) call them; clients cannot call tools directly. Any authenticated caller."""
    tools = runs.tools.all()
    page = [
        ToolInfo(name=tool.name, description=tool.description, parameters=tool.parameters)
        for tool in tools[offset : offset + limit]
    ]
    return ToolList(items=page, total=len(tools), limit=limit, offset=offset)

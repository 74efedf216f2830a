"""A tool is a name, a description, a JSON schema and an async function of its arguments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.llm.types import ToolSpec

ToolFunction = Callable[[dict[str, Any]], Awaitable[str]]


class ToolError(Exception):
    """A tool refused its input; the message is shown to the model and the client."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


class ToolRegistry:
    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda tool: tool.name)

    def specs(self) -> list[ToolSpec]:
        return [tool.spec() for tool in self.all()]

    async def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Run a tool; returns (output, success). Failures are reported, never raised."""
        tool = self._tools.get(name)
        if tool is None:
            return f"unknown tool {name!r}", False
        try:
            return await tool.function(arguments), True
        except ToolError as exc:
            return str(exc), False

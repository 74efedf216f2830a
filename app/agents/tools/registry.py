"""A tool is a name, a description, a JSON schema and an async function of its arguments.

``ToolRegistry.call`` is the one place a tool runs: under a timeout, and whatever goes wrong
(a refusal, a bug, a hang) comes back as a failed ``ToolOutcome`` the model can read and
react to. A tool never ends the run; only cancellation passes through.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from app.llm.types import ToolSpec

log = structlog.get_logger(__name__)

ToolFunction = Callable[[dict[str, Any]], Awaitable[str]]

# What OpenAI-compatible servers accept as a function name.
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
DEFAULT_TOOL_TIMEOUT_SECONDS = 30.0
MAX_ERROR_CHARS = 200


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


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool call gave: its output, or (``success=False``) why it failed."""

    output: str
    success: bool


class ToolRegistry:
    def __init__(
        self, tools: list[Tool] | None = None, *, timeout: float = DEFAULT_TOOL_TIMEOUT_SECONDS
    ) -> None:
        self.timeout = timeout
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if not isinstance(tool, Tool):
            raise TypeError(f"{tool!r} is not a Tool (decorate a function with @tool)")
        if not re.fullmatch(TOOL_NAME_PATTERN, tool.name):
            raise ValueError(
                f"tool name {tool.name!r} must match {TOOL_NAME_PATTERN} "
                "(letters, digits, _ and -, at most 64)"
            )
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda tool: tool.name)

    def specs(self) -> list[ToolSpec]:
        return [tool.spec() for tool in self.all()]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Run a tool. Failures are returned, never raised (cancellation still propagates)."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolOutcome(f"unknown tool {name!r}", success=False)
        try:
            # Our own deadline, told apart from a TimeoutError the tool itself raises.
            with anyio.move_on_after(self.timeout) as deadline:
                output = await tool.function(arguments)
        except ToolError as exc:
            return ToolOutcome(_short(str(exc)), success=False)
        except Exception as exc:  # a tool's bug is the model's problem to route around
            log.exception("tool_failed", tool=name)
            message = _short(str(exc))
            detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
            return ToolOutcome(f"tool {name!r} failed: {detail}", success=False)
        if deadline.cancelled_caught:
            log.warning("tool_timeout", tool=name, timeout_s=self.timeout)
            return ToolOutcome(
                f"tool {name!r} did not finish within {self.timeout:g} seconds", success=False
            )
        # A hand-written Tool may return something else; the model and the events need text.
        return ToolOutcome(output if isinstance(output, str) else str(output), success=True)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."

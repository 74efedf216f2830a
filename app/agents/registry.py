"""Agents by name: built-ins, the ``@agent`` decorator, and the AGENTS setting.

A team serves its own agent without editing ``app/``: put ``AGENTS=mypkg.agents:support``
in the environment; the attribute may be an Agent object or a function decorated with
``@agent``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.agents.context import RunContext
from app.agents.errors import AgentNotFound
from app.agents.events import Event
from app.agents.protocol import (
    AGENT_NAME_PATTERN,
    DEFAULT_INPUT_SCHEMA,
    Agent,
    AgentCapabilities,
)
from app.core.imports import import_object
from app.core.settings_loader import ConfigError

AgentFunction = Callable[[str, RunContext], AsyncIterator[Event]]


class FunctionAgent:
    """Adapts an async generator function ``(input, ctx) -> events`` to the Agent protocol."""

    def __init__(
        self,
        function: AgentFunction,
        *,
        name: str,
        description: str,
        capabilities: AgentCapabilities | None = None,
        input_schema: dict[str, Any] | None = None,
    ) -> None:
        self._function = function
        self.name = name
        self.description = description
        self.capabilities = capabilities or AgentCapabilities()
        self.input_schema = input_schema or DEFAULT_INPUT_SCHEMA

    def run(self, input: str, ctx: RunContext) -> AsyncIterator[Event]:
        return self._function(input, ctx)


def agent(
    *,
    name: str,
    description: str,
    streaming: bool = True,
    human_input: bool = False,
    tools: bool = False,
) -> Callable[[AgentFunction], FunctionAgent]:
    """Decorator turning an async generator function into an Agent."""

    def wrap(function: AgentFunction) -> FunctionAgent:
        capabilities = AgentCapabilities(streaming=streaming, human_input=human_input, tools=tools)
        return FunctionAgent(
            function, name=name, description=description, capabilities=capabilities
        )

    return wrap


class AgentRegistry:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}

    def register(self, item: Agent) -> None:
        if not isinstance(item, Agent):
            raise TypeError(
                f"{item!r:.60} does not implement the Agent protocol (decorate it with @agent)"
            )
        if not isinstance(item.name, str) or not re.fullmatch(AGENT_NAME_PATTERN, item.name):
            # Checked here so a bad name fails at start-up, not as a 422 on every session.
            raise ValueError(
                f"agent name {item.name!r} must match {AGENT_NAME_PATTERN} "
                "(lowercase letters, digits, _ and -; at most 64)"
            )
        if item.name in self._agents:
            raise ValueError(f"agent {item.name!r} is already registered")
        self._agents[item.name] = item

    def get(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def require(self, name: str) -> Agent:
        """The agent called ``name``, or AgentNotFound (a 404 ``agent_not_found``)."""
        found = self._agents.get(name)
        if found is None:
            raise AgentNotFound(name)
        return found

    def all(self) -> list[Agent]:
        return sorted(self._agents.values(), key=lambda item: item.name)

    def load(self, entry: str) -> None:
        """Register the agent ``package.module:attribute`` names; ConfigError if it cannot."""
        try:
            self.register(import_object(entry, setting="AGENTS"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"AGENTS: {entry!r}: {exc}") from None


def build_registry(extra: list[str]) -> AgentRegistry:
    from app.agents.builtin import BUILTIN_AGENTS

    registry = AgentRegistry()
    for item in BUILTIN_AGENTS:
        registry.register(item)
    for entry in extra:
        registry.load(entry)
    return registry

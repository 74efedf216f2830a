"""Agents by name: built-ins, the ``@agent`` decorator, and the AGENTS setting.

A team serves its own agent without editing ``app/``: put ``AGENTS=mypkg.agents:support``
in the environment; the attribute may be an Agent object or a function decorated with
``@agent``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.agents.context import RunContext
from app.agents.events import Event
from app.agents.protocol import DEFAULT_INPUT_SCHEMA, Agent, AgentCapabilities

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
            raise TypeError(f"{item!r} does not implement the Agent protocol")
        if item.name in self._agents:
            raise ValueError(f"agent {item.name!r} is already registered")
        self._agents[item.name] = item

    def get(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def all(self) -> list[Agent]:
        return sorted(self._agents.values(), key=lambda item: item.name)

    def load(self, import_path: str) -> None:
        """Register ``package.module:attribute``."""
        module_name, _, attribute = import_path.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"AGENTS entry {import_path!r} must look like 'pkg.module:attr'")
        module = importlib.import_module(module_name)
        self.register(getattr(module, attribute))


def build_registry(extra: list[str]) -> AgentRegistry:
    from app.agents.builtin import BUILTIN_AGENTS

    registry = AgentRegistry()
    for item in BUILTIN_AGENTS:
        registry.register(item)
    for import_path in extra:
        registry.load(import_path)
    return registry

"""Agents by name: built-ins, the ``@agent`` decorator, and the AGENTS setting.

A team serves its own agent without editing ``app/``: put ``AGENTS=mypkg.agents:support``
in the environment; the attribute may be an Agent object, a function decorated with
``@agent``, or a framework's agent (app/agents/adapters/). ``name=`` in front of an entry
(``AGENTS=support=myapp.graph:graph``) serves it under that name; without it the name comes
from the object.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel

from app.agents.context import RunContext
from app.agents.errors import AgentNotFound
from app.agents.events import Event
from app.agents.protocol import (
    AGENT_NAME_PATTERN,
    DEFAULT_INPUT_SCHEMA,
    Agent,
    AgentCapabilities,
    input_schema_for,
)
from app.core.imports import import_object
from app.core.settings_loader import ConfigError

# (input, ctx) -> events; input: the text, or the agent's input_model instance.
AgentFunction = Callable[[Any, RunContext], AsyncIterator[Event]]


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
        input_model: type[BaseModel] | None = None,
    ) -> None:
        self._function = function
        self.name = name
        self.description = description
        self.capabilities = capabilities or AgentCapabilities()
        self.input_model = input_model
        default_schema = input_schema_for(input_model) if input_model else DEFAULT_INPUT_SCHEMA
        self.input_schema = input_schema or default_schema

    def run(self, input: Any, ctx: RunContext) -> AsyncIterator[Event]:
        return self._function(input, ctx)


def agent(
    *,
    name: str,
    description: str,
    streaming: bool = True,
    human_input: bool = False,
    tools: bool = False,
    input_model: type[BaseModel] | None = None,
) -> Callable[[AgentFunction], FunctionAgent]:
    """Decorator turning an async generator function into an Agent. ``input_model``: the
    body's ``input`` is validated against it and the agent receives the model instance."""

    def wrap(function: AgentFunction) -> FunctionAgent:
        capabilities = AgentCapabilities(streaming=streaming, human_input=human_input, tools=tools)
        return FunctionAgent(
            function,
            name=name,
            description=description,
            capabilities=capabilities,
            input_model=input_model,
        )

    return wrap


class RenamedAgent:
    """An Agent served under another name (``name=`` in an AGENTS entry)."""

    def __init__(self, inner: Agent, name: str) -> None:
        self._inner = inner
        self.name = name
        self.description = inner.description
        self.capabilities = inner.capabilities
        self.input_schema = inner.input_schema
        self.input_model = getattr(inner, "input_model", None)

    def run(self, input: Any, ctx: RunContext) -> AsyncIterator[Event]:
        return self._inner.run(input, ctx)


def split_entry(entry: str) -> tuple[str | None, str]:
    """``name=package.module:attribute`` -> (name, target); the name part is optional."""
    name, sep, target = entry.partition("=")
    if not sep:
        return None, entry
    return name.strip(), target.strip()


def as_agent(obj: Any, *, name: str | None) -> Agent:
    """``obj`` as an Agent: itself, or through its framework's adapter."""
    if isinstance(obj, Agent):
        return obj if name is None or name == obj.name else RenamedAgent(obj, name)
    from app.agents.adapters import adapt  # imports a framework only when one is served

    adapted = adapt(obj, name=name)
    if adapted is None:
        raise TypeError(
            f"{obj!r:.60} is not an agent: decorate a function with @agent, implement the "
            "Agent protocol, or name a LangGraph graph, a Pydantic AI or OpenAI Agents SDK "
            "Agent, or a LlamaIndex Workflow"
        )
    return adapted


class AgentRegistry:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._sources: dict[str, str] = {}  # agent name -> the AGENTS entry (or "built-in")

    def register(self, item: Agent, *, source: str = "built-in") -> None:
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
            raise ValueError(
                f"agent name {item.name!r} is taken twice: by {self._sources[item.name]!r} "
                f"and by {source!r} (give one a name: AGENTS=other-name=package.module:attr)"
            )
        self._agents[item.name] = item
        self._sources[item.name] = source

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
        """Register the agent ``[name=]package.module:attribute`` names; ConfigError if it
        cannot (a bad name, no adapter for the object, a missing extra, a name clash)."""
        name, target = split_entry(entry)
        try:
            agent = as_agent(import_object(target, setting="AGENTS"), name=name or None)
            self.register(agent, source=entry)
        except (TypeError, ValueError, ImportError) as exc:
            raise ConfigError(f"AGENTS: {entry!r}: {exc}") from None


def build_registry(extra: list[str]) -> AgentRegistry:
    from app.agents.builtin import BUILTIN_AGENTS

    registry = AgentRegistry()
    for item in BUILTIN_AGENTS:
        registry.register(item)
    for entry in extra:
        registry.load(entry)
    return registry

"""Serve an agent written with a framework: the adapter is chosen by the object's type.

``AGENTS=support=myapp.graph:graph`` names a compiled LangGraph graph, a Pydantic AI or an
OpenAI Agents SDK ``Agent``, or a LlamaIndex ``Workflow``; each adapter lives in its own
module here and imports its framework only when an object of that framework is served, so
the base install needs none of them (each is an extra: ``pip install -e ".[langgraph]"``).

An adapter module offers ``accepts(obj) -> bool`` and ``build(obj, *, name) -> Agent``
(``name`` is None when the entry gave none: the adapter takes the object's own name through
``agent_name_from``).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from app.agents.protocol import AGENT_NAME_PATTERN, Agent


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    framework: str
    module: str  # our adapter module
    type_modules: tuple[str, ...]  # where the framework's classes live (checked on the MRO)
    extra: str  # pip extra that installs the framework


ADAPTERS: tuple[AdapterSpec, ...] = (
    AdapterSpec("LangGraph", "app.agents.adapters.langgraph", ("langgraph",), "langgraph"),
    AdapterSpec("Pydantic AI", "app.agents.adapters.pydantic_ai", ("pydantic_ai",), "pydantic-ai"),
    AdapterSpec(
        "OpenAI Agents SDK", "app.agents.adapters.openai_agents", ("agents",), "openai-agents"
    ),
    AdapterSpec(
        "LlamaIndex workflows",
        "app.agents.adapters.llamaindex",
        ("workflows", "llama_index"),
        "llamaindex",
    ),
)


def _framework_modules(obj: Any) -> set[str]:
    """The top-level packages of the classes ``obj`` is made of (a user's Workflow subclass
    lives in the user's module; its bases in the framework's)."""
    kind = obj if isinstance(obj, type) else type(obj)
    return {cls.__module__.partition(".")[0] for cls in kind.__mro__}


def adapt(obj: Any, *, name: str | None) -> Agent | None:
    """The Agent serving ``obj`` through its framework's adapter; None when no adapter
    claims it. ImportError (with the extra to install) when the adapter cannot load."""
    modules = _framework_modules(obj)
    for spec in ADAPTERS:
        if modules.isdisjoint(spec.type_modules):
            continue
        try:
            adapter = importlib.import_module(spec.module)
        except ImportError as exc:
            raise ImportError(
                f"serving a {spec.framework} object needs its extra: "
                f'pip install "agent-service[{spec.extra}]" ({exc})'
            ) from None
        if adapter.accepts(obj):
            built: Agent = adapter.build(obj, name=name)
            return built
    return None


def agent_name_from(raw: str | None, *, fallback: str) -> str:
    """A framework object's own name made to fit the agent-name pattern: lowercase, runs of
    other characters become ``-``, at most 64 characters; ``fallback`` when nothing is left."""
    text = re.sub(r"[^a-z0-9_-]+", "-", (raw or "").strip().lower()).strip("-_")[:64]
    if not text or not re.fullmatch(AGENT_NAME_PATTERN, text):
        text = re.sub(r"[^a-z0-9_-]+", "-", fallback.lower()).strip("-_")[:64] or "agent"
    return text

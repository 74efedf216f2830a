"""The tool registry a process serves: the built-ins plus what the TOOLS setting names.

``TOOLS=mytools:lookup_order,mytools:ALL`` adds a team's tools without editing ``app/``; an
entry's attribute may be a ``@tool`` function, a ``Tool``, or a list of them. Anything wrong
with an entry stops start-up with one ConfigError line naming the setting and the entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.agents.tools.builtin import BUILTIN_TOOLS
from app.agents.tools.registry import DEFAULT_TOOL_TIMEOUT_SECONDS, Tool, ToolRegistry
from app.core.imports import import_object
from app.core.settings_loader import ConfigError


def build_tool_registry(
    entries: Iterable[str] = (), *, timeout: float = DEFAULT_TOOL_TIMEOUT_SECONDS
) -> ToolRegistry:
    registry = ToolRegistry(BUILTIN_TOOLS, timeout=timeout)
    for entry in entries:
        for item in _tools_in(import_object(entry, setting="TOOLS"), entry):
            try:
                registry.register(item)
            except ValueError as exc:
                raise ConfigError(f"TOOLS: {entry!r}: {exc}") from None
    return registry


def _tools_in(target: Any, entry: str) -> list[Tool]:
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    for item in items:
        if not isinstance(item, Tool):
            hint = " (decorate it with @tool)" if callable(item) else ""
            raise ConfigError(
                f"TOOLS: {entry!r} names {type(item).__name__} {item!r:.60}, "
                f"not a Tool, an @tool function or a list of them{hint}"
            )
    return items

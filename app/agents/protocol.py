"""The Agent protocol: what a team implements to serve its agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from app.agents.context import RunContext
    from app.agents.events import Event

# An agent's name is a URL path segment and a session field; the API schemas use this too.
AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

DEFAULT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "minLength": 1}},
    "required": ["input"],
}


class AgentCapabilities(BaseModel):
    streaming: bool = True
    human_input: bool = False
    tools: bool = False


@runtime_checkable
class Agent(Protocol):
    """What the runtime serves. An agent may also have ``input_model`` (a pydantic model
    class, read with ``getattr(agent, "input_model", None)``): its input is then validated
    against it, and its ``input_schema`` is that model's JSON schema."""

    name: str
    description: str
    input_schema: dict[str, Any]
    capabilities: AgentCapabilities

    def run(self, input: str, ctx: RunContext) -> AsyncIterator[Event]:
        """Yield events. Text goes out as TokenEvent deltas; the run's output is the text of
        the last MessageEvent(role="assistant") or, without one, the joined tokens."""
        ...

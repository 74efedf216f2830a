"""Reasons a run ends early (each with a stable ``code`` for the in-band error event), and
the agent lookup failure."""

from __future__ import annotations

from app.core.errors import NotFound


class AgentNotFound(NotFound):
    """No agent with this name is served; the API renders it as a 404 ``agent_not_found``."""

    code = "agent_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"No agent named {name!r}.")
        self.name = name


class RunFailure(Exception):
    code = "agent_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class MaxStepsExceeded(RunFailure):
    code = "max_steps_exceeded"


class InputTimeout(RunFailure):
    code = "input_timeout"


class InvalidInput(ValueError):
    """A human-input answer that does not fit the request (kind, choices)."""

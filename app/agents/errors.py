"""Reasons a run ends early. Each has a stable ``code`` for the in-band error event."""

from __future__ import annotations


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

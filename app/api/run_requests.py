"""Shared by the invoke, stream and WebSocket routes: body -> RunRequest, and error mapping."""

from __future__ import annotations

import math
from dataclasses import replace

from app.agents.events import ErrorEvent
from app.agents.protocol import input_text, parse_input
from app.agents.registry import AgentRegistry
from app.agents.run_request import RunRequest
from app.api.schemas.agents import AgentRunBody, RunBody
from app.core.config import Settings
from app.core.errors import AppError, Unprocessable
from app.security.principals import Principal

BODY_INPUT = ("body", "input")


def build_run_request(
    *,
    agent: str,
    body: RunBody,
    principal: Principal,
    settings: Settings,
    no_cache: bool,
    agents: AgentRegistry,
    loc: tuple[str, ...] = BODY_INPUT,
) -> RunRequest:
    """The run the body asks for, its input checked against the agent (text, or its input
    model) before anything is created. An unknown agent is a 404 ``agent_not_found``."""
    if len(input_text(body.input)) > settings.MAX_INPUT_CHARS:  # an object: its compact JSON
        raise Unprocessable(
            f"input: at most {settings.MAX_INPUT_CHARS} characters", code="validation_error"
        )
    request = RunRequest(
        agent=agent,
        input=parse_input(agents.require(agent), body.input, loc=loc),
        given_input=body.input,
        principal=principal,
        session_id=body.session_id,
        params=dict(body.params),
        max_steps=body.max_steps,
        bypass_cache=no_cache,
    )
    if isinstance(body, AgentRunBody):  # a foreground run's options (a task has none)
        request = replace(
            request, store=body.store, on_disconnect=body.on_disconnect, if_busy=body.if_busy
        )
    return request


def wants_no_cache(cache_control: str | None) -> bool:
    return cache_control is not None and "no-cache" in cache_control.lower()


_STATUS_BY_CODE = {
    "run_timeout": 504,
    "input_timeout": 504,
    "max_steps_exceeded": 422,
    "invalid_params": 422,
    "cancelled": 409,
    "budget_exceeded": 429,
    "model_unpriced": 503,  # a cost budget applies and MODEL_PRICES has no price for the model
    "client_disconnected": 499,
    "shutdown": 503,
}


def run_error(error: ErrorEvent) -> AppError:
    """The HTTP error for a run that ended with an error event (invoke only).

    A model provider failure says whether retrying can help (``retryable``, an extension
    member) and, when the provider said, when (``Retry-After``).
    """
    status = _STATUS_BY_CODE.get(error.code, 502 if error.code.startswith("llm_") else 500)
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(error.retry_after))
    extensions = {} if error.retryable is None else {"retryable": error.retryable}
    return AppError(
        error.message, status=status, code=error.code, headers=headers, extensions=extensions
    )

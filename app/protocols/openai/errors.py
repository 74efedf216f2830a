"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for every error on
the OpenAI routes (a problem body turned into it by app/core/problems.py's dialect), and the
errors those routes raise themselves.

The SDKs pick their exception class by status alone (400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 429 RateLimitError, ...) and read ``message``,
``type``, ``param`` and ``code`` from the body. ``type`` follows what OpenAI's API sends:
``invalid_request_error`` for every 4xx (a bad key included), ``requests`` for a rate limit,
``server_error`` for 5xx. ``code`` is ours (docs/architecture.md#errors), except for the ones
OpenAI clients look for by name (``model_not_found``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import AppError, NotFound

# Path prefixes (under API_PREFIX) whose errors leave in OpenAI's shape.
OPENAI_PATHS = ("/models", "/chat/completions", "/responses")

# Problem members the dialect maps itself; every other member (run_id, limit, input_request,
# retryable) goes along as an extension member of the error object.
_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "request_id", "errors"})


def error_type(status: int) -> str:
    if status == 429:
        return "requests"  # what OpenAI's API sends for a request rate limit
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(problem: Mapping[str, Any]) -> dict[str, Any]:
    status = int(problem.get("status", 500))
    error: dict[str, Any] = {
        "message": problem.get("detail") or problem.get("title") or "",
        "type": error_type(status),
        "param": _param_of(problem),
        "code": problem.get("code"),
    }
    for name, value in problem.items():
        if name not in _PROBLEM_MEMBERS:
            error[name] = value
    if problem.get("request_id"):
        error["request_id"] = problem["request_id"]
    return {"error": error}


def _param_of(problem: Mapping[str, Any]) -> str | None:
    """The first invalid field of a validation error, as OpenAI names it (``messages.0``)."""
    errors = problem.get("errors")
    if not errors:
        return None
    loc = [str(part) for part in errors[0].get("loc", ()) if part != "body"]
    return ".".join(loc) or None


class InvalidRequest(AppError):
    """400, as OpenAI answers a body it cannot use (it has no 422); ``param`` names the field."""

    status, code = 400, "invalid_request"

    def __init__(
        self,
        detail: str,
        *,
        param: Sequence[str | int] = (),
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        if errors is None:
            errors = [{"loc": list(param), "msg": detail, "type": code or self.code}]
        super().__init__(detail, code=code, extensions={"errors": errors})


def model_not_found(model: str) -> NotFound:
    """OpenAI's answer for an unknown model: 404 ``model_not_found``."""
    return NotFound(
        f"The model `{model}` does not exist: GET /v1/models lists the agents served as models.",
        code="model_not_found",
    )

"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for every error on
the OpenAI routes (a problem body turned into it by app/core/problems.py's dialect)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Path prefixes (under API_PREFIX) whose errors leave in OpenAI's shape.
OPENAI_PATHS = ("/models", "/chat/completions", "/responses")

# The types OpenAI's API sends per status (the SDKs pick their error class by status).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(problem: Mapping[str, Any]) -> dict[str, Any]:
    status = int(problem.get("status", 500))
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {
        "message": problem.get("detail") or problem.get("title") or "",
        "type": error_type,
        "param": _param_of(problem),
        "code": problem.get("code"),
    }
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

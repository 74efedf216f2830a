"""Errors: a problem+json answer becomes an ApiError carrying its fields."""

from __future__ import annotations

import json
from typing import Any

import httpx


class AgentServiceError(Exception):
    """Base of every error this client raises."""


class ApiError(AgentServiceError):
    """The server answered 4xx/5xx. The problem+json members are attributes; extension
    members (``retryable``, ``run_id``, ``limit``...) are in ``extra``."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        detail: str,
        title: str = "",
        type: str = "about:blank",  # noqa: A002 - the problem+json member's name
        request_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.type = type
        self.request_id = request_id
        self.errors = errors or []
        self.extra = extra or {}
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not problem+json (a proxy's page): keep what we can
            body = {"detail": response.text[:500] or response.reason_phrase}
        known = {"status", "code", "detail", "title", "type", "request_id", "errors"}
        errors = body.get("errors")
        return cls(
            status=response.status_code,
            code=str(body.get("code") or f"http_{response.status_code}"),
            detail=str(body.get("detail") or ""),
            title=str(body.get("title") or response.reason_phrase),
            type=str(body.get("type") or "about:blank"),
            request_id=body.get("request_id") or response.headers.get("X-Request-ID"),
            errors=errors if isinstance(errors, list) else None,
            extra={k: v for k, v in body.items() if k not in known},
            retry_after=retry_after_of(response),
        )


class StreamError(AgentServiceError):
    """An event stream could not be resumed (reconnection attempts ran out)."""


class TaskTimeout(AgentServiceError):
    """``wait_task`` gave up before the task finished."""


def retry_after_of(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

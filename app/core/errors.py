"""One error base class; every error a client sees is one of these, rendered as problem+json."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class AppError(Exception):
    """An error with a stable ``code`` and a message that is safe to show a client."""

    status: int = 500
    code: str = "internal_error"
    detail: str = "An internal error occurred."

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status or self.status
        self.code = code or self.code
        self.detail = detail or self.detail
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})  # extra problem+json members (RFC 9457)
        super().__init__(self.detail)

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase


class Unauthorized(AppError):
    status, code, detail = 401, "unauthorized", "Authentication is required."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(
            detail, code=code, headers={"WWW-Authenticate": 'Bearer realm="agent-service"'}
        )


class Forbidden(AppError):
    status, code, detail = 403, "forbidden", "You do not have permission for this action."


class NotFound(AppError):
    status, code, detail = 404, "not_found", "The resource was not found."


class Conflict(AppError):
    status, code, detail = 409, "conflict", "The request conflicts with the current state."


class Unprocessable(AppError):
    status, code, detail = 422, "validation_error", "The request body is invalid."

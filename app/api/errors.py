"""Exception handlers: every error leaves as problem+json, and a 500 never leaks internals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import AppError
from app.core.problems import problem_body, render_error, request_id_of
from app.core.routing import RouteTable

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}
_HTTP_DETAILS = {
    404: "No route matches this path.",
    405: "This method is not allowed on this route.",
}


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    problem = problem_body(
        status=status,
        code=code,
        detail=detail,
        request_id=request_id_of(request.scope),
        extra=extra,
    )
    body, content_type = render_error(request.scope, problem)
    return JSONResponse(body, status_code=status, headers=headers, media_type=content_type)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101 - registered for AppError only
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        detail=exc.detail,
        headers=exc.headers,
        extra=exc.extensions,
    )


def _http_error_handler(
    routes: RouteTable,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def _http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else _HTTP_DETAILS.get(status, "")
        if status in _HTTP_DETAILS and detail in ("Not Found", "Method Not Allowed"):
            detail = _HTTP_DETAILS[status]
        headers = dict(exc.headers or {})
        if status == 405:
            # Starlette names only the first matching route's methods; list them all.
            headers["Allow"] = ", ".join(routes.allowed_methods(request.url.path))
        return problem_response(
            request,
            status=status,
            code=_HTTP_CODES.get(status, "http_error"),
            detail=detail,
            headers=headers,
        )

    return _http_error


def _safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Drop "input" and "ctx": the input may hold a password, and ctx may hold objects.
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = _safe_errors(exc)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return problem_response(
        request,
        status=422,
        code="validation_error",
        detail=f"{where}: {first['msg']}" if where else str(first["msg"]),
        extra={"errors": errors},
    )


async def _dependency_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency_unavailable", error_type=type(exc).__name__)
    return problem_response(
        request,
        status=503,
        code="dependency_unavailable",
        detail="A required dependency is unavailable; retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    # Runs in Starlette's outermost ServerErrorMiddleware: log the traceback, show nothing.
    # The server logs the traceback when the exception propagates; this line ties it to us.
    log.error("unhandled_exception", error_type=type(exc).__name__)
    request_id = request_id_of(request.scope)
    response = problem_response(
        request, status=500, code="internal_error", detail="An internal error occurred."
    )
    if request_id:
        response.headers["X-Request-ID"] = request_id
    # Written outside our middleware (by Starlette's outermost layer): add the basics here.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def install_exception_handlers(app: FastAPI, *, routes: RouteTable) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler(routes))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RedisError, _dependency_error)
    app.add_exception_handler(Exception, _unhandled_error)

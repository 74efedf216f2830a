"""Errors in A2A's shape: our AppErrors as the SDK's A2AErrors (the JSON-RPC codes of the
spec, our stable code in the ErrorInfo metadata), and every HTTP-level error under /a2a (401
from auth, 429 from the rate limiter, an unknown agent) as a JSON-RPC error object with the
HTTP status kept, which is how A2A clients tell an authentication failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import structlog
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from app.core.errors import AppError

log = structlog.get_logger(__name__)

A2A_PATH = "/a2a"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
DOMAIN = "agent-service"

# Codes that mean "no such task" to an A2A client: a foreign id answers the same as a missing one.
_TASK_NOT_FOUND = frozenset({"task_not_found", "run_not_found", "input_request_not_found"})


def to_a2a_error(exc: AppError) -> A2AError:
    """The A2A error a client sees for one of ours."""
    data: dict[str, Any] = {"code": exc.code}
    if "Retry-After" in exc.headers:
        data["retry_after"] = exc.headers["Retry-After"]
    if exc.code in _TASK_NOT_FOUND:
        return TaskNotFoundError(exc.detail, data=data)
    if exc.status == 409:  # busy context, finished task, nothing to answer
        return UnsupportedOperationError(exc.detail, data=data)
    if exc.status in (400, 404, 413, 422):  # unknown context, bad input, a bad answer
        return InvalidParamsError(exc.detail, data=data)
    if exc.status == 429:  # the caller's task cap: retry later
        return InvalidRequestError(exc.detail, data=data)
    if exc.status == 503:
        return InternalError("A dependency is unavailable; retry shortly.", data=data)
    return InternalError("The request could not be completed.", data=data)


@contextmanager
def a2a_errors(operation: str) -> Iterator[None]:
    """Run a handler body: our errors become A2A errors, anything unexpected is logged once
    and leaves as a bare internal error (the SDK would otherwise send ``str(exc)``)."""
    try:
        yield
    except A2AError:
        raise
    except AppError as exc:
        raise to_a2a_error(exc) from None
    except Exception:
        log.exception("a2a_handler_failed", operation=operation)
        raise InternalError("The request could not be completed.") from None


T = TypeVar("T")


async def stream_with_a2a_errors(stream: AsyncIterator[T], operation: str) -> AsyncIterator[T]:
    """``a2a_errors`` for a stream: the error ends it as an SSE error event."""
    with a2a_errors(operation):
        async for item in stream:
            yield item


_JSONRPC_CODES = {400: -32600, 413: -32600, 422: -32602}


def jsonrpc_error(problem: Mapping[str, Any]) -> dict[str, Any]:
    """The error dialect of /a2a: a problem body as a JSON-RPC 2.0 error response.

    Codes: JSON-RPC's for bad requests, -32000 (implementation-defined server error) for
    authentication, authorisation, limits and outages, -32603 for the rest; our code and the
    request id ride in an ErrorInfo, as A2A's error details do."""
    status = int(problem.get("status", 500))
    code = _JSONRPC_CODES.get(status, -32603 if status >= 500 and status != 503 else -32000)
    metadata = {"code": str(problem.get("code", "")), "status": str(status)}
    if problem.get("request_id"):
        metadata["request_id"] = str(problem["request_id"])
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": code,
            "message": str(problem.get("detail") or problem.get("title") or "Error"),
            "data": [
                {
                    "@type": ERROR_INFO_TYPE,
                    "reason": str(problem.get("code", "")).upper(),
                    "domain": DOMAIN,
                    "metadata": metadata,
                }
            ],
        },
    }

"""The /a2a routes' errors in our OpenAPI document: every error under /a2a (401 from auth, 429
from the rate limiter, an unknown agent) is a JSON-RPC 2.0 error response (errors.py)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.responses import ALWAYS


class JsonRpcError(BaseModel):
    code: int = Field(
        description="JSON-RPC's code: -32600/-32602 bad request, -32000 "
        "authentication, authorisation, limits, outages; -32603 internal."
    )
    message: str
    data: list[dict[str, Any]] = Field(
        description="An ErrorInfo: our stable code (reason, metadata.code), the HTTP status "
        "and the request id."
    )


class JsonRpcErrorResponse(BaseModel):
    """An error under /a2a, with the HTTP status kept (A2A clients tell a 401 by it)."""

    jsonrpc: Literal["2.0"]
    id: str | int | None
    error: JsonRpcError


def jsonrpc_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these statuses (and those every route may answer)."""
    return {
        status: {"model": JsonRpcErrorResponse, "description": HTTPStatus(status).phrase}
        for status in sorted({*statuses, 404, *ALWAYS})
    }

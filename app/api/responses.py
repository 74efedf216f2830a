"""OpenAPI ``responses=`` for problem+json errors, declared once."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

PROBLEM: dict[str, Any] = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {}},
}


def problems(*statuses: int) -> Responses:
    """The listed statuses plus 429 (rate limit) and 503 (a dependency down), which any
    route may answer."""
    return {code: PROBLEM for code in (*statuses, 429, 503)}

"""OpenAPI ``responses=`` for problem+json errors, declared once."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

PROBLEM: dict[str, Any] = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {}},
}


def problems(*statuses: int) -> Responses:
    """The listed statuses plus those any route may answer: 400 (a body that is not UTF-8),
    422 (validation, problem+json rather than FastAPI's default schema), 429 (rate limit)
    and 503 (a dependency down)."""
    return {code: PROBLEM for code in sorted({*statuses, 400, 422, 429, 503})}

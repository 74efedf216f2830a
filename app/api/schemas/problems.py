"""The problem+json body (RFC 9457) exactly as app/core/problems.py writes it, for OpenAPI.

Documentation only: the writers build plain dicts. tests/integration/test_openapi_fuzz.py
checks every error the fuzzer provokes against this schema, so it cannot drift unnoticed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ValidationIssue(BaseModel):
    """One failed check of a 422 ``validation_error`` (the input itself is never echoed)."""

    loc: list[str | int] = Field(
        description="Where the check failed: 'body', 'query', 'path' or 'header', then the "
        "field names and list indexes down to the value.",
        examples=[["body", "input"]],
    )
    msg: str = Field(description="What is wrong, for a human.")
    type: str | None = Field(
        description="Pydantic's machine-readable error type.", examples=["string_too_short"]
    )


class Problem(BaseModel):
    """An error. Every 4xx and 5xx of this API has this body and the media type
    ``application/problem+json``, whether a route, the authentication, body size or rate
    limit middleware, or the last-resort handler answered. Branch on ``code``, not on
    ``detail``. ``instance`` is not used: ``request_id`` names the occurrence instead."""

    model_config = ConfigDict(
        extra="allow",  # RFC 9457 extension members: clients must ignore unknown ones
        json_schema_extra={
            "examples": [
                {
                    "type": "https://agent-service.dev/problems/agent_not_found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "No agent named 'chatbot'.",
                    "code": "agent_not_found",
                    "request_id": "5f0c8a3e9b7d4e21a6c1f0b2d3e4a5b6",
                }
            ]
        },
    )

    type: str = Field(
        description="A URI naming the problem type: https://agent-service.dev/problems/ "
        "followed by ``code``.",
        examples=["https://agent-service.dev/problems/agent_not_found"],
    )
    title: str = Field(
        description="The HTTP status phrase, the same for every occurrence of the status.",
        examples=["Not Found"],
    )
    status: int = Field(description="The HTTP status code, repeated.", examples=[404])
    detail: str = Field(
        description="What went wrong in this occurrence, safe to show a user. Never holds "
        "internals: a 500 always reads 'An internal error occurred.'",
        examples=["No agent named 'chatbot'."],
    )
    code: str = Field(
        description="Stable machine-readable error code, e.g. unauthorized, token_expired, "
        "insufficient_scope, agent_not_found, session_not_found, task_not_found, "
        "validation_error, rate_limited, too_many_auth_failures, too_many_concurrent_runs, "
        "payload_too_large, dependency_unavailable, "
        "llm_unavailable, run_timeout, internal_error.",
        examples=["agent_not_found"],
    )
    request_id: str | None = Field(
        description="The request's X-Request-ID (also in the response header and the server "
        "log); null only when the request never got one.",
        examples=["5f0c8a3e9b7d4e21a6c1f0b2d3e4a5b6"],
    )
    errors: list[ValidationIssue] = Field(
        default_factory=list,
        description="Extension member of 422 ``validation_error`` answers to a request that "
        "failed schema validation: every failed check. Absent from other problems.",
    )
    retryable: bool | None = Field(
        default=None,
        description="Extension member of model provider failures (``llm_*`` codes): whether "
        "the same request may succeed later (a timeout, a rate limit) or not (a rejected API "
        "key, an unknown model). Absent from other problems.",
    )

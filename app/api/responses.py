"""OpenAPI ``responses=`` declared once: problem+json errors and the two event streams.

Every error response points at the ``Problem`` schema under ``application/problem+json``,
with a description of when it happens and examples of what is really sent. The schemas
these responses reference are added to the document by ``add_components`` (app/api/docs.py
installs it), since FastAPI only collects models it sees in route signatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api.schemas.problems import Problem
from app.api.schemas.streams import (
    RUN_STREAM_ADAPTER,
    RUN_STREAM_DESCRIPTION,
    TASK_STREAM_ADAPTER,
    TASK_STREAM_DESCRIPTION,
)
from app.core.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

Responses = dict[int | str, dict[str, Any]]

REF_PREFIX = "#/components/schemas/"
PROBLEM_REF = REF_PREFIX + "Problem"
RUN_STREAM_EVENT = "RunStreamEvent"
TASK_STREAM_EVENT = "TaskStreamEvent"
EVENT_STREAM_CONTENT_TYPE = "text/event-stream"
EXAMPLE_REQUEST_ID = "5f0c8a3e9b7d4e21a6c1f0b2d3e4a5b6"


@dataclass(frozen=True, slots=True)
class ProblemDoc:
    """When an error status happens, and the ``(code, detail)`` pairs really sent for it."""

    description: str
    examples: tuple[tuple[str, str], ...]


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


RETRY_AFTER = {"Retry-After": _header("Seconds to wait before retrying.")}

# What any route may answer, in words a client can act on.
DEFAULT_DOCS: dict[int, ProblemDoc] = {
    400: ProblemDoc(
        "The request could not be read, e.g. a body that is not UTF-8.",
        (("bad_request", "There was an error parsing the body"),),
    ),
    401: ProblemDoc(
        "No valid credentials (`WWW-Authenticate: Bearer`). Codes: unauthorized, bad_scheme, "
        "token_invalid/expired/revoked, api_key_invalid/expired/revoked; OIDC: "
        "token_unknown_key, token_algorithm_refused, oidc_unavailable.",
        (
            ("unauthorized", "Send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'."),
            ("token_expired", "The access token has expired."),
            ("api_key_invalid", "The API key is invalid or revoked."),
        ),
    ),
    403: ProblemDoc(
        "The credentials are valid but lack a scope this operation needs.",
        (("insufficient_scope", "Missing scope: agents:run."),),
    ),
    404: ProblemDoc(
        "Not found, or not yours: another caller's resource answers exactly like a missing one.",
        (("not_found", "The resource was not found."),),
    ),
    409: ProblemDoc(
        "The request conflicts with the resource's current state.",
        (("conflict", "The request conflicts with the current state."),),
    ),
    413: ProblemDoc(
        "The request body exceeds MAX_REQUEST_BODY_BYTES.",
        (("payload_too_large", "The request body exceeds 1048576 bytes."),),
    ),
    422: ProblemDoc(
        "The request failed validation; `errors` lists every failed check.",
        (("validation_error", "body.input: String should have at least 1 character"),),
    ),
    429: ProblemDoc(
        "Rate limit exceeded for this caller and route, or too many failed authentications "
        "from this address (AUTH_FAILURE_LIMIT); wait `Retry-After` seconds.",
        (
            ("rate_limited", "Rate limit of 120 requests exceeded; retry in 12 s."),
            (
                "too_many_auth_failures",
                "Too many failed authentications from this address (at most 30 per 60 s); "
                "retry in 41 s.",
            ),
        ),
    ),
    500: ProblemDoc(
        "An unexpected error. The body never holds internals; quote `request_id` when "
        "reporting it.",
        (("internal_error", "An internal error occurred."),),
    ),
    502: ProblemDoc(
        "The model provider failed (every `llm_*` code). `detail` says what happened and "
        "`retryable` (true|false) whether the same request may succeed later; `Retry-After` "
        "comes when the provider sent one.",
        (
            (
                "llm_unavailable",
                "The model provider could not be reached (connection refused); retrying may help.",
            ),
            (
                "llm_unauthorized",
                "The model provider rejected the API key (HTTP 401); retrying will not help.",
            ),
            (
                "llm_model_not_found",
                "Model 'gpt-9' was not found at the model provider (HTTP 404); "
                "retrying will not help.",
            ),
            (
                "llm_timeout",
                "The model provider did not answer within 60 s; retrying may help.",
            ),
            (
                "llm_bad_response",
                "The model provider answered HTTP 502 with an HTML page instead of an API "
                "response (a failing proxy or a wrong base URL); retrying may help.",
            ),
        ),
    ),
    503: ProblemDoc(
        "A required dependency (Redis, the rate limiter) is unavailable, or the server is "
        "shutting down; retry after `Retry-After` seconds.",
        (("dependency_unavailable", "A required dependency is unavailable; retry shortly."),),
    ),
    504: ProblemDoc(
        "The run did not finish within RUN_TIMEOUT_SECONDS.",
        (("run_timeout", "The run exceeded 120 s."),),
    ),
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header('Always `Bearer realm="agent-service"`.')},
    429: RETRY_AFTER,
    502: RETRY_AFTER,  # when the model provider sent one
    503: RETRY_AFTER,
}

# Statuses any route may answer: 400 (an unreadable body), 413 (body size limit), 422
# (validation), 429 (rate limit), 500 (a bug) and 503 (a dependency down).
ALWAYS = frozenset({400, 413, 422, 429, 500, 503})

# Route-specific problems, named where the routes declare them.
AGENT_NOT_FOUND = ProblemDoc(
    "No agent with this name is registered (GET /v1/agents lists them).",
    (("agent_not_found", "No agent named 'chatbot'."),),
)
SESSION_NOT_FOUND = ProblemDoc(
    "No session with this id belongs to the caller (expired, deleted, or someone else's).",
    (("session_not_found", "No session with this id."),),
)
TASK_NOT_FOUND = ProblemDoc(
    "No task with this id belongs to the caller.",
    (("task_not_found", "No task with this id."),),
)
API_KEY_NOT_FOUND = ProblemDoc(
    "No API key with this id.", (("not_found", "No API key with this id."),)
)
RUN_START_NOT_FOUND = ProblemDoc(
    "The agent is not registered, or `session_id` names no session of the caller's.",
    (
        ("agent_not_found", "No agent named 'chatbot'."),
        ("session_not_found", "No session with this id."),
    ),
)
RUN_START_CONFLICT = ProblemDoc(
    "The session is in use by another run or belongs to another agent.",
    (
        ("session_busy", "Another run is using this session."),
        ("session_agent_mismatch", "This session belongs to agent 'assistant'."),
    ),
)
RUN_START_UNPROCESSABLE = ProblemDoc(
    "The body failed validation (`errors` lists every failed check), or the input is "
    "longer than MAX_INPUT_CHARS.",
    (
        ("validation_error", "body.input: String should have at least 1 character"),
        ("validation_error", "input: at most 2000 characters"),
    ),
)
INVOKE_CONFLICT = ProblemDoc(
    "The session is in use by another run or belongs to another agent; the agent asked for "
    "human input, which needs the stream, the WebSocket or a background task; or the run "
    "was cancelled (POST /v1/runs/{run_id}/cancel).",
    (
        *RUN_START_CONFLICT.examples,
        (
            "input_required_unsupported",
            "This agent asks for human input: use the stream or WebSocket route, "
            "or a background task.",
        ),
        ("cancelled", "The run was cancelled."),
    ),
)
INVOKE_UNPROCESSABLE = ProblemDoc(
    RUN_START_UNPROCESSABLE.description
    + " Also when `params` do not suit the agent, or the run needed more than `max_steps`.",
    (
        *RUN_START_UNPROCESSABLE.examples,
        ("invalid_params", "params: temperature must be 0..2 and max_tokens >= 1"),
        ("max_steps_exceeded", "the run used its 10 steps"),
    ),
)
TASK_SUBMIT_UNPROCESSABLE = ProblemDoc(
    RUN_START_UNPROCESSABLE.description
    + " Also when the `Idempotency-Key` was already used with a different body.",
    (
        *RUN_START_UNPROCESSABLE.examples,
        (
            "idempotency_key_mismatch",
            "This Idempotency-Key was already used with a different request body; "
            "send a new key for a new task.",
        ),
    ),
)
LOGIN_UNAUTHORIZED = ProblemDoc(
    "Wrong username or password (the same answer for both).",
    (("invalid_credentials", "Incorrect username or password."),),
)
LOGIN_UNPROCESSABLE = ProblemDoc(
    "A form field is missing or invalid, or the password is longer than bcrypt accepts.",
    (
        ("validation_error", "body.username: Field required"),
        ("password_too_long", "password must be at most 72 bytes"),
    ),
)
TASK_CONFLICT = ProblemDoc(
    "The task's state does not allow this: it has finished, is still queued (pause), or "
    "is not waiting for input.",
    (
        ("task_finished", "The task is already completed."),
        ("task_not_running", "A queued task cannot be paused; cancel it instead."),
        ("no_input_pending", "The task is not waiting for input."),
    ),
)
TASK_INPUT_NOT_FOUND = ProblemDoc(
    "No task with this id belongs to the caller, or the task waits for another input request.",
    (
        ("task_not_found", "No task with this id."),
        ("input_request_not_found", "The task is not waiting for this input request."),
    ),
)
INPUT_UNPROCESSABLE = ProblemDoc(
    "The body failed validation, or the answer does not fit the request: `confirm` takes "
    "true/false, `choice` one of the offered choices.",
    (
        ("validation_error", "body.request_id: Field required"),
        ("invalid_input", "the answer must be one of: low, normal, high"),
    ),
)
SESSION_CREATE_NOT_FOUND = ProblemDoc(
    "No agent with this name is registered (GET /v1/agents lists them).",
    (("agent_not_found", "No agent named 'chatbot'."),),
)
LIVE_RUN_NOT_FOUND = ProblemDoc(
    "No live run with this id (finished, never started, or someone else's), or the run is "
    "not waiting for this input request.",
    (
        ("run_not_found", "No live run with this id."),
        ("input_request_not_found", "The run is not waiting for this input request."),
    ),
)


def _example(status: int, code: str, detail: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": EXAMPLE_REQUEST_ID,
    }
    if code == "validation_error" and detail.startswith("body.input"):
        body["errors"] = [
            {
                "loc": ["body", "input"],
                "msg": "String should have at least 1 character",
                "type": "string_too_short",
            }
        ]
    return body


def problem_response(status: int, doc: ProblemDoc | None = None) -> dict[str, Any]:
    """One error response: the Problem schema, when it happens, and real examples."""
    doc = doc or DEFAULT_DOCS.get(status) or ProblemDoc(HTTPStatus(status).phrase, ())
    content: dict[str, Any] = {"schema": {"$ref": PROBLEM_REF}}
    examples: dict[str, Any] = {}
    for code, detail in doc.examples:
        name = code if code not in examples else f"{code}_{len(examples) + 1}"
        examples[name] = {"summary": code, "value": _example(status, code, detail)}
    if examples:
        content["examples"] = examples
    response: dict[str, Any] = {
        "description": doc.description,
        "content": {PROBLEM_CONTENT_TYPE: content},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def problems(*statuses: int, docs: Mapping[int, ProblemDoc] | None = None) -> Responses:
    """The listed statuses plus ``ALWAYS``, each documented by ``docs`` or the default."""
    docs = docs or {}
    wanted = {*statuses, *docs, *ALWAYS}
    return {status: problem_response(status, docs.get(status)) for status in sorted(wanted)}


def event_stream(schema_name: str, description: str) -> Responses:
    """The 200 of a server-sent event route: the union of what a frame's ``data`` holds."""
    return {
        200: {
            "description": description,
            "content": {EVENT_STREAM_CONTENT_TYPE: {"schema": {"$ref": REF_PREFIX + schema_name}}},
        }
    }


RUN_EVENT_STREAM = event_stream(RUN_STREAM_EVENT, RUN_STREAM_DESCRIPTION)
TASK_EVENT_STREAM = event_stream(TASK_STREAM_EVENT, TASK_STREAM_DESCRIPTION)


def component_schemas() -> dict[str, Any]:
    """The schemas the responses above reference, named as they are referenced."""
    models: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    _, top = models_json_schema(models, ref_template=REF_PREFIX + "{model}")
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for name, adapter in (
        (RUN_STREAM_EVENT, RUN_STREAM_ADAPTER),
        (TASK_STREAM_EVENT, TASK_STREAM_ADAPTER),
    ):
        union = adapter.json_schema(mode="serialization", ref_template=REF_PREFIX + "{model}")
        schemas.update(union.pop("$defs", {}))
        for ref in union["discriminator"]["mapping"].values():
            # Frames are whole model dumps: every member is always there, `type` included
            # (OpenAPI requires the discriminator property to be required).
            member = schemas[ref.removeprefix(REF_PREFIX)]
            member["required"] = list(member["properties"])
        union["title"] = name
        union["description"] = (
            "The JSON in the `data` line of one frame; `type` (also the frame's `event` name) "
            "tells which."
        )
        schemas[name] = union
    return schemas


# Path parameters are declared in the route signatures; a usable example for the one that
# names a built-in resource is added here, so "Try it out" starts from a real agent.
PATH_PARAMETER_EXAMPLES = {"agent": "chat"}


def _add_path_examples(document: dict[str, Any]) -> None:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                example = PATH_PARAMETER_EXAMPLES.get(parameter["name"])
                if parameter["in"] == "path" and example is not None:
                    parameter.setdefault("example", example)


_ANNOTATIONS = frozenset({"title", "description", "default", "examples"})


def _constraints(schema: Any) -> Any:
    """A schema without its annotations: what a value must be, not how it is described."""
    if isinstance(schema, dict):
        return {k: _constraints(v) for k, v in schema.items() if k not in _ANNOTATIONS}
    if isinstance(schema, list):
        return [_constraints(item) for item in schema]
    return schema


def add_components(document: dict[str, Any]) -> dict[str, Any]:
    """Merge ``component_schemas`` into a generated document. A name FastAPI already uses
    must be the same model (FastAPI's copy is kept): two different schemas under one name
    would be a silent lie."""
    existing = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in component_schemas().items():
        if name not in existing:
            existing[name] = schema
        elif _constraints(existing[name]) != _constraints(schema):
            raise RuntimeError(f"OpenAPI component {name!r} is defined twice, differently")
    _add_path_examples(document)
    return document

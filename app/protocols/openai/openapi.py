"""The OpenAI routes in our OpenAPI document: their error shape, and the request bodies they
parse by hand (so that a bad body is OpenAI's 400, not FastAPI's 422)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from app.api.responses import ALWAYS

REF = "#/components/schemas/{model}"


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error (4xx), requests (429), server_error.")
    param: str | None = Field(description="The request field at fault, if one is.")
    code: str | None = Field(description="Stable snake_case code (docs/architecture.md#errors).")
    request_id: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every error on the OpenAI routes, as OpenAI's API and SDKs shape it. Extension members
    may follow in ``error``: run_id, input_request, limit, retryable."""

    error: OpenAIErrorDetail


def openai_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these statuses (and those any route may answer: a bad
    body, the size limit, the rate limit, 5xx) in OpenAI's error shape."""
    return {
        status: {"model": OpenAIErrorBody, "description": HTTPStatus(status).phrase}
        for status in sorted({*statuses, *ALWAYS})
    }


def add_request_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Put ``models`` (and the models they use) in the document's components, where the
    routes' ``openapi_extra`` request bodies refer to them."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template=REF)
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas.setdefault(model.__name__, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

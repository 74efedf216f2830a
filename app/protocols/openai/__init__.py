"""OpenAI's API over our agents: each agent is a model. Chat Completions (chat_routes.py),
Responses (responses_routes.py) and the model list (models_routes.py), under API_PREFIX,
answering errors in OpenAI's shape (errors.py), which is what the SDKs parse."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings
from app.core.routing import RouteTable
from app.protocols import Lifespan
from app.protocols.openai import chat_routes, models_routes, responses_routes
from app.protocols.openai.errors import OPENAI_PATHS, openai_error
from app.protocols.openai.openapi import add_request_schemas


def mount(app: FastAPI, settings: Settings, routes: RouteTable) -> list[Lifespan]:
    prefix = settings.API_PREFIX
    for path in OPENAI_PATHS:
        routes.add_error_dialect(prefix + path, openai_error)
    for router in (models_routes.router, chat_routes.router, responses_routes.router):
        app.include_router(router, prefix=prefix)
        routes.add_router(router, prefix=prefix)
    add_request_schemas(app, chat_routes.REQUEST_SCHEMAS)
    return []

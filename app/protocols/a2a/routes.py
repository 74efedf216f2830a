"""The A2A routes, at the root as in the spec's examples:

- ``GET /.well-known/agent-card.json``: the default agent's card (A2A_DEFAULT_AGENT);
- ``GET /a2a``: every agent's card; ``GET /a2a/{agent}/.well-known/agent-card.json``: one;
- ``POST /a2a/{agent}``: the JSON-RPC binding (SSE for the streaming methods).

Cards are public. The JSON-RPC route authorises here, before the SDK's dispatcher parses the
call: a principal (401), then the method's scope (403: tasks:write to send, cancel and set
configs, tasks:read to read and subscribe), then the agent (404); the call it authorised
goes to the handler in the SDK's ServerCallContext. Errors before the dispatcher leave as
JSON-RPC error objects with the HTTP status (errors.py); the dispatcher's own are JSON-RPC
errors with 200, as the binding says.
"""

from __future__ import annotations

import json
from typing import Any

from a2a.server.jsonrpc_models import JSONParseError
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.deps import ServicesDep, authorize
from app.api.responses import AGENT_NOT_FOUND, problems
from app.core.config import Settings
from app.core.errors import NotFound
from app.core.urls import public_base_url
from app.protocols.a2a.call import CALL_KEY, A2ACall, A2ARuntime, CallContextBuilder
from app.protocols.a2a.cards import card_json
from app.protocols.a2a.errors import A2A_PATH
from app.protocols.a2a.handler import RunsRequestHandler
from app.protocols.a2a.openapi import jsonrpc_errors
from app.protocols.a2a.task_view import TaskLinks
from app.security.scopes import Scope
from app.services import AppServices

_WRITE, _READ = Scope.TASKS_WRITE, Scope.TASKS_READ
# Both generations of method names: 1.0 (what a2a-sdk 1.x sends) and 0.3's, which the SDK's
# dispatcher still serves when a request carries no A2A-Version header.
METHOD_SCOPES: dict[str, Scope] = {
    "SendMessage": _WRITE,
    "SendStreamingMessage": _WRITE,
    "CancelTask": _WRITE,
    "CreateTaskPushNotificationConfig": _WRITE,
    "DeleteTaskPushNotificationConfig": _WRITE,
    "GetTask": _READ,
    "ListTasks": _READ,
    "SubscribeToTask": _READ,
    "GetTaskPushNotificationConfig": _READ,
    "ListTaskPushNotificationConfigs": _READ,
    "message/send": _WRITE,
    "message/stream": _WRITE,
    "tasks/cancel": _WRITE,
    "tasks/pushNotificationConfig/set": _WRITE,
    "tasks/pushNotificationConfig/delete": _WRITE,
    "tasks/get": _READ,
    "tasks/resubscribe": _READ,
    "tasks/pushNotificationConfig/get": _READ,
    "tasks/pushNotificationConfig/list": _READ,
}
CARD_CACHE = "public, max-age=300"
_RPC_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["jsonrpc", "method"],
                "properties": {
                    "jsonrpc": {"const": "2.0"},
                    "id": {"type": ["string", "integer", "null"]},
                    "method": {"type": "string", "examples": ["SendMessage"]},
                    "params": {"type": "object"},
                },
            }
        }
    },
}


def base_url_of(request: Request, settings: Settings) -> str:
    return public_base_url(request.scope, settings.PUBLIC_URL)


def _default_agent(services: AppServices) -> str:
    name = services.settings.A2A_DEFAULT_AGENT
    if name:
        return name
    agents = services.agents.all()
    if not agents:
        raise NotFound("No agent is served.", code="agent_not_found")
    return agents[0].name


def _card(services: AppServices, request: Request, agent: str) -> JSONResponse:
    found = services.agents.require(agent)
    body = card_json(
        found, base_url=base_url_of(request, services.settings), settings=services.settings
    )
    return JSONResponse(body, headers={"Cache-Control": CARD_CACHE})


def build_router(runtime: A2ARuntime) -> APIRouter:
    router = APIRouter(tags=["a2a"])
    dispatcher = JsonRpcDispatcher(
        request_handler=RunsRequestHandler(),
        context_builder=CallContextBuilder(),
        enable_v0_3_compat=True,
    )

    @router.get(
        "/.well-known/agent-card.json",
        summary="The default agent's A2A card",
        responses=problems(docs={404: AGENT_NOT_FOUND}),
    )
    async def root_card(request: Request, services: ServicesDep) -> JSONResponse:
        """The card of A2A_DEFAULT_AGENT (unset: the first agent by name). Public."""
        return _card(services, request, _default_agent(services))

    @router.get(A2A_PATH, summary="Every agent's A2A card", responses=jsonrpc_errors())
    async def all_cards(request: Request, services: ServicesDep) -> dict[str, Any]:
        """`{items, total}`: the card of each agent served, as at its own card URL. Public."""
        settings = services.settings
        base = base_url_of(request, settings)
        items = [card_json(a, base_url=base, settings=settings) for a in services.agents.all()]
        return {"items": items, "total": len(items)}

    @router.get(
        A2A_PATH + "/{agent}/.well-known/agent-card.json",
        summary="One agent's A2A card",
        responses=jsonrpc_errors(),
    )
    async def agent_card(agent: str, request: Request, services: ServicesDep) -> JSONResponse:
        """The agent's A2A card: its JSON-RPC URL, skills, capabilities and security schemes.
        Public, like every agent card."""
        return _card(services, request, agent)

    @router.post(
        A2A_PATH + "/{agent}",
        summary="A2A JSON-RPC",
        openapi_extra={"requestBody": _RPC_BODY},
        responses=jsonrpc_errors(401, 403),
    )
    async def jsonrpc(agent: str, request: Request, services: ServicesDep) -> Response:
        """A2A 1.0's JSON-RPC binding (send `A2A-Version: 1.0`): SendMessage,
        SendStreamingMessage and SubscribeToTask (SSE), GetTask, ListTasks, CancelTask, and
        the push notification config methods. Without the header, 0.3's names
        (`message/send`, ...). Tasks are background tasks (`tasks:write` to send and cancel,
        `tasks:read` to read); a context is a session."""
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:  # not JSON, or not UTF-8
            error = JSONParseError(message=f"The body is not JSON ({type(exc).__name__}).")
            return JSONResponse(build_error_response(None, error))
        method = payload.get("method") if isinstance(payload, dict) else None
        scope = METHOD_SCOPES.get(method) if isinstance(method, str) else None
        principal = authorize(
            request.scope.get("principal"),
            required=frozenset({scope} if scope else ()),
            auth=services.settings.AUTH_ENABLED,
        )
        services.agents.require(agent)
        base_url = base_url_of(request, services.settings)
        request.scope[CALL_KEY] = A2ACall(
            principal=principal,
            agent=agent,
            services=services,
            links=TaskLinks(base_url=base_url, api_prefix=services.settings.API_PREFIX),
            push=runtime.parts(services),
        )
        return await dispatcher.handle_requests(request)

    return router

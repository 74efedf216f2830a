"""A2A over our agents: every agent served is an A2A agent, with its card and the JSON-RPC
binding at /a2a/{agent} (routes.py). A2A tasks are our background tasks, contexts are our
sessions, and the same auth, scopes, rate limits and ownership apply; the SDK (a2a-sdk 1.x)
gives the types, the JSON-RPC dispatcher and the 0.3 adapter, and handler.py maps its
RequestHandler onto our tasks. Errors under /a2a leave as JSON-RPC error objects."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings
from app.core.routing import RouteTable
from app.protocols import Lifespan
from app.protocols.a2a.call import A2ARuntime
from app.protocols.a2a.errors import A2A_PATH, jsonrpc_error
from app.protocols.a2a.routes import build_router


def mount(app: FastAPI, settings: Settings, routes: RouteTable) -> list[Lifespan]:
    runtime = A2ARuntime(settings)
    router = build_router(runtime)
    app.include_router(router)
    routes.add_router(router)
    routes.add_error_dialect(A2A_PATH, jsonrpc_error)
    return [runtime.lifespan]

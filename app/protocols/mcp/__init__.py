"""MCP over streamable HTTP at /mcp: every agent is a tool, a call is one of our runs.

- endpoint.py: the SDK's session manager as an ASGI endpoint, behind our middleware; 401
  with the protected-resource challenge for anonymous callers.
- server.py: the SDK's low-level Server and its handlers (tools, tasks).
- runs.py / tasks.py: a tool call as a foreground run, a task-augmented call as a task.
- metadata.py: /.well-known/oauth-protected-resource (RFC 9728).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from app.core.config import Settings
from app.core.routing import RouteTable
from app.protocols import Lifespan
from app.protocols.mcp import metadata
from app.protocols.mcp.challenge import MCP_PATH, www_authenticate
from app.protocols.mcp.endpoint import McpEndpoint
from app.protocols.mcp.server import build_server

# POST carries JSON-RPC messages, GET opens the server's stream, DELETE ends a session.
METHODS = ["GET", "POST", "DELETE"]


def mount(app: FastAPI, settings: Settings, routes: RouteTable) -> list[Lifespan]:
    endpoint = McpEndpoint(build_server(settings), settings)
    # A route, not a Mount: a Mount would answer /mcp with a redirect to /mcp/.
    app.router.routes.append(
        Route(MCP_PATH, endpoint=endpoint, methods=METHODS, include_in_schema=False)
    )
    routes.add(MCP_PATH, set(METHODS))
    # Every 401 on /mcp (the authentication middleware's too) names the metadata document.
    routes.add_auth_challenge(MCP_PATH, lambda scope: www_authenticate(scope, settings.PUBLIC_URL))
    app.include_router(metadata.router)
    routes.add_router(metadata.router)
    return [endpoint.running]

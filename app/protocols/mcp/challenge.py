"""Where a client learns how to authenticate: the protected-resource metadata URL (RFC 9728),
named in the ``WWW-Authenticate`` header of every 401 on /mcp (MCP authorization spec)."""

from __future__ import annotations

from starlette.types import Scope

from app.core.urls import public_base_url

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"


def resource_url(scope: Scope, public_url: str | None) -> str:
    return public_base_url(scope, public_url) + MCP_PATH


def metadata_url(scope: Scope, public_url: str | None) -> str:
    return public_base_url(scope, public_url) + METADATA_PATH


def www_authenticate(scope: Scope, public_url: str | None) -> str:
    return f'Bearer realm="agent-service", resource_metadata="{metadata_url(scope, public_url)}"'

"""GET /.well-known/oauth-protected-resource: RFC 9728 protected-resource metadata for /mcp.

MCP clients read it (from the ``resource_metadata`` of a 401's ``WWW-Authenticate``, or at
this well-known path) to learn which authorization servers issue tokens for this resource and
which scopes exist. ``authorization_servers`` lists the configured OIDC issuers; without one it
is left out (optional in RFC 9728): tokens then come from POST /v1/auth/token or an API key,
which a generic OAuth client cannot discover. The SDK's ProtectedResourceMetadata requires at
least one authorization server, so the document has a model of its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from app.api.deps import SettingsDep
from app.api.responses import problems
from app.core.config import Settings
from app.core.urls import public_base_url
from app.protocols.mcp.challenge import MCP_PATH, METADATA_PATH
from app.security.scopes import Scope

router = APIRouter(tags=["mcp"])
CACHE_SECONDS = 300  # clients cache it; an issuer change shows within this


class ProtectedResource(BaseModel):
    resource: str = Field(description="The MCP endpoint's URL: what tokens are for.")
    authorization_servers: list[str] | None = Field(
        None, description="Issuers whose access tokens this resource accepts."
    )
    scopes_supported: list[str]
    bearer_methods_supported: list[str] = Field(default_factory=lambda: ["header"])
    resource_name: str
    resource_documentation: str | None = None


def issuers(settings: Settings) -> list[str]:
    """OIDC_ISSUER, or each OIDC_PROVIDERS entry's issuer, in order, without repeats."""
    found = [settings.OIDC_ISSUER] if settings.OIDC_ISSUER else []
    found += [str(p["issuer"]) for p in settings.OIDC_PROVIDERS if p.get("issuer")]
    return list(dict.fromkeys(found))


def protected_resource(settings: Settings, base: str) -> ProtectedResource:
    return ProtectedResource(
        resource=base + MCP_PATH,
        authorization_servers=issuers(settings) or None,
        scopes_supported=[scope.value for scope in Scope],
        resource_name=settings.API_TITLE,
        resource_documentation=base + "/docs" if settings.DOCS_ENABLED else None,
    )


# Both spellings: RFC 9728 inserts the resource's path after the well-known prefix, and MCP
# clients try that first, then the bare one.
@router.get(
    METADATA_PATH,
    response_model=ProtectedResource,
    response_model_exclude_none=True,
    summary="The MCP endpoint's protected-resource metadata",
    responses=problems(),
)
@router.get(
    METADATA_PATH + MCP_PATH,
    response_model=ProtectedResource,
    response_model_exclude_none=True,
    include_in_schema=False,
)
async def resource_metadata(
    request: Request, response: Response, settings: SettingsDep
) -> ProtectedResource:
    """OAuth 2.0 protected-resource metadata (RFC 9728) of the MCP endpoint: its URL, the
    identity providers whose tokens it accepts, and the scopes. No credentials needed."""
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return protected_resource(settings, public_base_url(request.scope, settings.PUBLIC_URL))

"""Agent cards: one per agent we serve, built with the SDK's types and written with its
serialiser (which adds the fields 0.3 clients read: ``url``, ``preferredTransport``).

A card names the JSON-RPC endpoint (absolute, from PUBLIC_URL or the request's base URL),
the capabilities we have for every agent (streaming, push notifications), one skill (the
agent itself, with its input modes: text, and JSON for an agent with an input model), and
our security schemes: a bearer token (our JWT, an API key, or an external OIDC token) or
the X-API-Key header, holding the tasks:write scope to send and tasks:read to read.
"""

from __future__ import annotations

from typing import Any

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    PROTOCOL_VERSION_0_3,
    PROTOCOL_VERSION_1_0,
    TransportProtocol,
)

from app.agents.protocol import Agent, input_model_of
from app.core.config import Settings
from app.protocols.a2a.errors import A2A_PATH
from app.security.scopes import Scope

TEXT, JSON = "text/plain", "application/json"
BEARER, API_KEY = "bearer", "apiKey"


def endpoint_url(base_url: str, agent: str) -> str:
    return f"{base_url}{A2A_PATH}/{agent}"


def card_url(base_url: str, agent: str) -> str:
    return endpoint_url(base_url, agent) + AGENT_CARD_WELL_KNOWN_PATH


def _security(settings: Settings) -> tuple[dict[str, SecurityScheme], list[SecurityRequirement]]:
    schemes = {
        BEARER: SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer",
                bearer_format="JWT",
                description=f"A token from POST {settings.API_PREFIX}/auth/token, an API key "
                "(ask_...), or an access token of a configured OIDC issuer.",
            )
        ),
        API_KEY: SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(
                location="header", name="X-API-Key", description="An API key (ask_...)."
            )
        ),
    }
    if not settings.AUTH_ENABLED:
        return schemes, []
    scopes = [Scope.TASKS_WRITE.value, Scope.TASKS_READ.value]
    # Either scheme will do: two requirements are alternatives.
    requirements = [
        SecurityRequirement(schemes={BEARER: StringList(list=scopes)}),
        SecurityRequirement(schemes={API_KEY: StringList(list=scopes)}),
    ]
    return schemes, requirements


def _skill(agent: Agent, input_modes: list[str]) -> AgentSkill:
    capabilities = agent.capabilities
    tags = ["streaming"] if capabilities.streaming else []
    if capabilities.human_input:
        tags.append("human-input")
    if capabilities.tools:
        tags.append("tools")
    return AgentSkill(
        id=agent.name,
        name=agent.name,
        description=agent.description or agent.name,
        tags=tags,
        input_modes=input_modes,
        output_modes=[TEXT],
    )


def agent_card(agent: Agent, *, base_url: str, settings: Settings) -> AgentCard:
    input_modes = [TEXT, JSON] if input_model_of(agent) is not None else [TEXT]
    schemes, requirements = _security(settings)
    return AgentCard(
        name=agent.name,
        description=agent.description or agent.name,
        version=settings.API_VERSION,
        # One endpoint, both generations: 1.0 clients pick 1.0, and the 0.3 entry gives the
        # card the fields 0.3 clients read (url, preferredTransport, protocolVersion).
        supported_interfaces=[
            AgentInterface(
                url=endpoint_url(base_url, agent.name),
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=version,
            )
            for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        ],
        provider=AgentProvider(organization=settings.API_TITLE, url=base_url),
        documentation_url=f"{base_url}/docs" if settings.DOCS_ENABLED else "",
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=True, extended_agent_card=False
        ),
        security_schemes=schemes,
        security_requirements=requirements,
        default_input_modes=input_modes,
        default_output_modes=[TEXT],
        skills=[_skill(agent, input_modes)],
    )


def card_json(agent: Agent, *, base_url: str, settings: Settings) -> dict[str, Any]:
    return agent_card_to_dict(agent_card(agent, base_url=base_url, settings=settings))

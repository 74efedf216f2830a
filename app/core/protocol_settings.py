"""Settings of the protocol surfaces other clients speak (app/protocols/): OpenAI's API,
AG-UI, A2A and MCP. A group of its own, mixed into Settings (app/core/config.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProtocolSettings(BaseModel):
    # --- Protocols other clients speak (app/protocols/) --------------------------------------
    PUBLIC_URL: str | None = Field(
        None,
        description="The base URL clients use behind the ingress (https://agents.example.com): "
        "absolute URLs in A2A agent cards and protocol metadata. Unset: the request's own base "
        "URL.",
    )
    PROTOCOL_OPENAI_ENABLED: bool = Field(
        True,
        description="Serve the agents as OpenAI models: GET /v1/models, POST /v1/chat/"
        "completions, /v1/responses (under API_PREFIX).",
    )
    PROTOCOL_AGUI_ENABLED: bool = Field(
        True, description="Serve AG-UI at POST /v1/agents/{agent}/ag-ui (under API_PREFIX)."
    )
    PROTOCOL_A2A_ENABLED: bool = Field(
        True, description="Serve A2A: agent cards and JSON-RPC at /a2a/{agent}."
    )
    A2A_DEFAULT_AGENT: str | None = Field(
        None,
        description="The agent the root A2A card (/.well-known/agent-card.json) describes. "
        "Unset: the first agent by name.",
    )
    A2A_PUSH_ALLOW_PRIVATE_URLS: bool = Field(
        False,
        description="Let A2A push notification webhooks target loopback, private and "
        "link-local addresses (a receiver on the same host or network). false: such URLs are "
        "refused, so a client cannot make the service call internal endpoints (SSRF).",
    )
    PROTOCOL_MCP_ENABLED: bool = Field(
        True, description="Serve MCP (streamable HTTP) at /mcp: every agent is a tool."
    )
    MCP_EXPOSE_TOOLS: bool = Field(
        False,
        description="Also expose the registered tools (GET /v1/tools) as MCP tools named "
        "tool_<name>, callable directly (scope agents:run).",
    )
    MCP_STATELESS: bool = Field(
        False,
        description="Serve /mcp without sessions: any replica answers any request, but "
        "elicitation (agents asking for human input) and notifications/cancelled need "
        "sessions and are then unavailable. false: sessions; route /mcp by the Mcp-Session-Id "
        "header when there are several replicas.",
    )

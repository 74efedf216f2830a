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
    PROTOCOL_MCP_ENABLED: bool = Field(
        True, description="Serve MCP (streamable HTTP) at /mcp: every agent is a tool."
    )

"""An MCP client session (the `mcp` package's own client over streamable HTTP) against our
/mcp, with the credentials and callbacks a test gives, and helpers to read what it got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from mcp import ClientSession, types
from mcp.client.session import ElicitationFnT

MCP_TIMEOUT = httpx.Timeout(30, read=60)


@dataclass
class Progress:
    """What the progress callback saw: (progress, message) in arrival order."""

    seen: list[tuple[float, str | None]] = field(default_factory=list)

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, message))

    @property
    def text(self) -> str:
        return "".join(message or "" for _, message in self.seen)


@asynccontextmanager
async def mcp_session(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    elicitation: ElicitationFnT | None = None,
    http: httpx.AsyncClient | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized session at ``url`` (the server's /mcp). ``http``: a client of the
    test's own (an in-process app), given the headers."""
    # Imported here: the module warns (deprecated spelling) only when the other one is used.
    from mcp.client.streamable_http import streamable_http_client

    owned = http is None
    client = http or httpx.AsyncClient(timeout=MCP_TIMEOUT)
    client.headers.update(headers or {})
    try:
        async with (
            streamable_http_client(url, http_client=client) as (read, write, _),
            ClientSession(read, write, elicitation_callback=elicitation) as session,
        ):
            await session.initialize()
            yield session
    finally:
        if owned:
            await client.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


def answer_form(value: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": value})


def asked_field(params: types.ElicitRequestParams) -> dict[str, Any]:
    """The one field of the form our server elicits (``answer``)."""
    assert isinstance(params, types.ElicitRequestFormParams), params
    field: dict[str, Any] = params.requestedSchema["properties"]["answer"]
    return field

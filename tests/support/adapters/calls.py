"""Calls the adapter tests make the same way: a bearer token, a finished SSE response's
frames, the payloads of one event type."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import login
from tests.support.sse import Frame, parse_lines


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client)}"}


def sse_frames(response: httpx.Response) -> list[Frame]:
    """The event frames of a stream that has ended (comments left out)."""
    assert response.status_code == 200, response.text
    return [f for f in parse_lines(iter(response.text.splitlines())) if f.event]


def payloads(frames: list[Frame], kind: str) -> list[Any]:
    """The JSON of every ``kind`` event, in order."""
    return [f.json for f in frames if f.event == kind]

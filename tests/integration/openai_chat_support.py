"""Shared by the in-process OpenAI chat tests: an app serving the test agents, and helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from openai.types.chat import ChatCompletionChunk

from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.support.openai_agents import AGENTS

SERVED = [*AGENTS, "tests.support.structured_agents:trip_planner"]


async def openai_app(
    make_settings: SettingsFactory, **overrides: Any
) -> AsyncIterator[tuple[AppClient, dict[str, str]]]:
    settings = make_settings(
        AGENTS=SERVED,
        RATE_LIMIT_ENABLED=False,
        OFFLINE_LATENCY_MS=0,
        OFFLINE_TOKENS_PER_SECOND=0,
        **overrides,
    )
    async with app_client(settings) as client:
        token = await login(client)
        yield client, {"Authorization": f"Bearer {token}"}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def sse_data(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an event stream, in order (OpenAI frames have no other line)."""
    frames = [frame for frame in response.text.split("\n\n") if frame]
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames), frames
    return [frame[len("data: ") :] for frame in frames]


def chunks(payloads: list[str]) -> list[ChatCompletionChunk]:
    assert payloads[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate(json.loads(p)) for p in payloads[:-1]]


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert error["message"], error
    return error

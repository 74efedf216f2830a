"""Tools through the API: a TOOLS plug-in is listed and callable in a run, and a failing tool
call is a result the agent goes on with, never a failed run."""

from __future__ import annotations

import time

import httpx

from tests.conftest import SettingsFactory, app_client, login
from tests.support.sse import parse_lines

PLUGINS = "tests.unit.agents.plugins"


async def _headers(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client)}"}


async def test_a_tools_plug_in_is_listed_with_its_schema_and_used_by_an_agent(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(TOOLS=[f"{PLUGINS}:word_count"], AGENTS=[f"{PLUGINS}:word_counter"])
    async with app_client(settings) as client:
        headers = await _headers(client)
        listed = (await client.get("/v1/tools", headers=headers)).json()
        tools = {tool["name"]: tool for tool in listed["items"]}
        assert tools["word_count"] == {
            "name": "word_count",
            "description": "Count the words in a text.",
            "parameters": {
                "additionalProperties": False,
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "type": "object",
            },
        }
        response = await client.post(
            "/v1/agents/word-counter/invoke", json={"input": "one two three"}, headers=headers
        )
        assert response.status_code == 200 and response.json()["output"] == "3"


async def test_a_hostile_calculation_is_a_failed_tool_result_and_the_run_completes(
    client: httpx.AsyncClient,
) -> None:
    headers = await _headers(client)
    started = time.monotonic()
    response = await client.post(
        "/v1/agents/assistant/stream",
        json={"input": "What is (((9**99)**99)**99)**5?"},
        headers=headers,
    )
    assert time.monotonic() - started < 5  # it froze the process for seconds before
    frames = [frame for frame in parse_lines(iter(response.text.splitlines())) if frame.event]
    events = {frame.event: frame.json for frame in frames}
    assert events["tool_call"]["name"] == "calculator"
    assert events["tool_result"]["success"] is False
    assert events["tool_result"]["output"] == "result too large"
    assert frames[-1].event == "run_completed"
    assert "result too large" in events["run_completed"]["output"]

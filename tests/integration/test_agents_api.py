"""Agents over invoke (JSON) through the full chain, with the offline LLM."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem


async def _headers(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client)}"}


async def _key(
    client: httpx.AsyncClient, admin: dict[str, str], scopes: list[str]
) -> dict[str, str]:
    response = await client.post(
        "/v1/auth/api-keys", json={"name": "k", "scopes": scopes}, headers=admin
    )
    assert response.status_code == 201
    return {"X-API-Key": response.json()["key"]}


async def test_discovery_lists_builtin_agents_and_tools(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    agents = (await client.get("/v1/agents", headers=headers)).json()
    names = [item["name"] for item in agents["items"]]
    assert names == ["approval", "assistant", "chat"]
    assistant = (await client.get("/v1/agents/assistant", headers=headers)).json()
    assert assistant["capabilities"] == {"streaming": True, "human_input": False, "tools": True}
    assert assistant["input_schema"]["required"] == ["input"]
    assert_problem(await client.get("/v1/agents/nope", headers=headers), 404, "agent_not_found")
    tools = (await client.get("/v1/tools", headers=headers)).json()
    assert [tool["name"] for tool in tools["items"]] == ["calculator", "current_time"]
    assert tools["items"][0]["parameters"]["required"] == ["expression"]
    page = (await client.get("/v1/tools?limit=1&offset=1", headers=headers)).json()
    assert [tool["name"] for tool in page["items"]] == ["current_time"] and page["total"] == 2
    assert_problem(await client.get("/v1/tools?limit=0", headers=headers), 422, "validation_error")
    assert_problem(await client.get("/v1/agents"), 401, "unauthorized")


async def test_invoke_returns_output_usage_and_cache_status(any_client: httpx.AsyncClient) -> None:
    headers = await _headers(any_client)
    body = {"input": "Tell me about rate limits"}
    first = await any_client.post("/v1/agents/chat/invoke", json=body, headers=headers)
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["output"] and data["run_id"]
    assert len(data["session_id"]) == 32  # a session started itself
    assert data["usage"]["completion_tokens"] > 0
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    assert data["cached"] is False and first.headers["x-cache"] == "MISS"
    second = await any_client.post("/v1/agents/chat/invoke", json=body, headers=headers)
    assert second.json()["output"] == data["output"]
    assert second.json()["cached"] is True and second.headers["x-cache"] == "HIT"
    bypass = await any_client.post(
        "/v1/agents/chat/invoke", json=body, headers={**headers, "Cache-Control": "no-cache"}
    )
    assert bypass.headers["x-cache"] == "BYPASS" and bypass.json()["cached"] is False


async def test_assistant_uses_the_calculator(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    response = await client.post(
        "/v1/agents/assistant/invoke", json={"input": "What is 12*(3+4)?"}, headers=headers
    )
    assert response.status_code == 200
    assert "84" in response.json()["output"]
    assert response.json()["metadata"]["steps"] == 2


async def test_assistant_stops_at_max_steps(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    response = await client.post(
        "/v1/agents/assistant/invoke",
        json={"input": "What is 2+2?", "max_steps": 1},
        headers=headers,
    )
    assert_problem(response, 422, "max_steps_exceeded")


async def test_invoke_of_an_agent_needing_human_input_is_refused(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    response = await client.post(
        "/v1/agents/approval/invoke", json={"input": "Restart the cluster"}, headers=headers
    )
    assert_problem(response, 409, "input_required_unsupported")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": "   "}, "input"),
        ({"input": "x" * 2001}, "input"),
        ({"input": "hi", "max_steps": 0}, "max_steps"),
        ({"input": "hi", "session_id": "../../etc"}, "session_id"),
        ({"input": "hi", "params": {"nested": {"a": 1}}}, "params"),
        ({"input": 5}, "input"),
    ],
)
async def test_invoke_validates_the_body(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    headers = await _headers(client)
    response = await client.post("/v1/agents/chat/invoke", json=body, headers=headers)
    problem = assert_problem(response, 422, "validation_error")
    assert where in problem["detail"]


async def test_invoke_needs_agents_run_scope(client: httpx.AsyncClient) -> None:
    admin = await _headers(client)
    reader = await _key(client, admin, ["sessions:read"])
    response = await client.post("/v1/agents/chat/invoke", json={"input": "hi"}, headers=reader)
    assert_problem(response, 403, "insufficient_scope")
    assert_problem(
        await client.post("/v1/agents/chat/invoke", json={"input": "hi"}), 401, "unauthorized"
    )
    assert_problem(
        await client.post("/v1/agents/nope/invoke", json={"input": "hi"}, headers=admin),
        404,
        "agent_not_found",
    )


async def test_sessions_give_chat_memory_and_belong_to_their_owner(
    any_client: httpx.AsyncClient,
) -> None:
    admin = await _headers(any_client)
    alice = await _key(any_client, admin, ["agents:run", "sessions:read", "sessions:write"])
    bob = await _key(any_client, admin, ["agents:run", "sessions:read", "sessions:write"])
    session = (await any_client.post("/v1/sessions", json={"agent": "chat"}, headers=alice)).json()
    prompt_tokens = []
    for text in ("My name is Alice.", "What is my name?"):
        response = await any_client.post(
            "/v1/agents/chat/invoke",
            json={"input": text, "session_id": session["id"]},
            headers=alice,
        )
        assert response.status_code == 200, response.text
        assert response.json()["session_id"] == session["id"]
        prompt_tokens.append(response.json()["usage"]["prompt_tokens"])
    # The second run saw the first exchange: its prompt carries the history.
    assert prompt_tokens[1] > prompt_tokens[0] + 10
    messages = (
        await any_client.get(f"/v1/sessions/{session['id']}/messages", headers=alice)
    ).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "My name is Alice."
    stolen = await any_client.post(
        "/v1/agents/chat/invoke", json={"input": "hi", "session_id": session["id"]}, headers=bob
    )
    assert_problem(stolen, 404, "session_not_found")
    wrong_agent = await any_client.post(
        "/v1/agents/assistant/invoke",
        json={"input": "hi", "session_id": session["id"]},
        headers=alice,
    )
    assert_problem(wrong_agent, 409, "session_agent_mismatch")


async def test_second_concurrent_run_on_a_session_is_409_session_busy(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(OFFLINE_LATENCY_MS=400)
    async with app_client(settings) as client:
        headers = await _headers(client)
        session = (
            await client.post("/v1/sessions", json={"agent": "chat"}, headers=headers)
        ).json()
        body = {"input": "slow question", "session_id": session["id"]}
        first, second = await asyncio.gather(
            client.post("/v1/agents/chat/invoke", json=body, headers=headers),
            client.post("/v1/agents/chat/invoke", json=body, headers=headers),
        )
        codes = sorted([first.status_code, second.status_code])
        assert codes == [200, 409]
        busy = first if first.status_code == 409 else second
        assert_problem(busy, 409, "session_busy")
        # The lock is released when the run ends: the session is usable again.
        again = await client.post("/v1/agents/chat/invoke", json=body, headers=headers)
        assert again.status_code == 200


async def test_run_timeout_is_504_and_counted(make_settings: SettingsFactory) -> None:
    settings = make_settings(OFFLINE_LATENCY_MS=2000, RUN_TIMEOUT_SECONDS=0.3)
    async with app_client(settings) as client:
        headers = await _headers(client)
        response = await client.post(
            "/v1/agents/chat/invoke", json={"input": "too slow"}, headers=headers
        )
        assert_problem(response, 504, "run_timeout")
        metrics = (await client.get("/metrics")).text
        assert 'agent_runs_total{agent="chat",status="timeout"}' in metrics


async def test_cancel_and_input_for_unknown_runs_are_404(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    assert_problem(await client.post("/v1/runs/nope/cancel", headers=headers), 404, "run_not_found")
    assert_problem(
        await client.post(
            "/v1/runs/nope/input", json={"request_id": "r", "value": True}, headers=headers
        ),
        404,
        "run_not_found",
    )
    assert_problem(
        await client.post("/v1/runs/nope/input", json={"value": True}, headers=headers),
        422,
        "validation_error",
    )


async def test_agents_setting_serves_a_teams_own_agent(make_settings: SettingsFactory) -> None:
    settings = make_settings(AGENTS=["tests.support.sample_agents:shouter"])
    async with app_client(settings) as client:
        headers = await _headers(client)
        names = [
            a["name"] for a in (await client.get("/v1/agents", headers=headers)).json()["items"]
        ]
        assert "shouter" in names
        response = await client.post(
            "/v1/agents/shouter/invoke", json={"input": "hello team"}, headers=headers
        )
        assert response.json()["output"] == "HELLO TEAM"


@pytest.mark.parametrize(
    "path", ["tests.support.sample_agents:not_an_agent", "tests.support.nowhere:x", "no-colon"]
)
def test_a_bad_agents_entry_fails_start_up_clearly(path: str) -> None:
    from app.agents.registry import build_registry
    from app.core.settings_loader import ConfigError

    with pytest.raises(ConfigError, match="^AGENTS: "):
        build_registry([path])


async def test_the_readme_example_agent_runs_as_a_task_with_human_input(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(AGENTS=["tests.support.sample_agents:support"])
    async with app_client(settings) as client:
        headers = await _headers(client)
        submitted = await client.post(
            "/v1/tasks",
            json={"agent": "support", "input": "My invoice is wrong"},
            headers=headers,
        )
        task_id = submitted.json()["task_id"]
        for _ in range(100):
            task = (await client.get(f"/v1/tasks/{task_id}", headers=headers)).json()
            if task["status"] == "input_required":
                break
            await asyncio.sleep(0.05)
        assert task["pending_input"]["kind"] == "confirm"
        answered = await client.post(
            f"/v1/tasks/{task_id}/input",
            json={"request_id": task["pending_input"]["request_id"], "value": False},
            headers=headers,
        )
        assert answered.status_code == 202
        for _ in range(100):
            result = await client.get(f"/v1/tasks/{task_id}/result", headers=headers)
            if result.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert result.json()["output"] == "Not sent."


@pytest.mark.parametrize(
    "options", [{"store": 0}, {"store": "false"}, {"max_steps": "5"}, {"max_steps": 2.0}]
)
async def test_run_options_of_the_wrong_json_type_are_refused_not_coerced(
    client: httpx.AsyncClient, options: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/agents/chat/invoke",
        json={"input": "hello", **options},
        headers=await _headers(client),
    )
    body = assert_problem(response, 422, "validation_error")
    field = next(iter(options))
    assert any(error["loc"][-1] == field for error in body["errors"]), body
    runs = await client.get("/v1/runs", headers=await _headers(client))
    assert runs.json()["total"] == 0  # refused before any run was started

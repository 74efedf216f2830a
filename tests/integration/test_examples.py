"""Each example under examples/ is served as its README says and answers a first request."""

from __future__ import annotations

import pytest

from tests.conftest import SettingsFactory, app_client, login

EXAMPLES = {
    "langgraph": "support=examples.langgraph.agent:graph",
    "llamaindex": "support=examples.llamaindex.agent:workflow",
    "openai_agents": "support=examples.openai_agents.agent:support",
    "pydantic_ai": "support=examples.pydantic_ai.agent:agent",
}


@pytest.mark.parametrize("framework", sorted(EXAMPLES))
async def test_the_example_is_served_and_runs_to_an_answer_or_a_question(
    make_settings: SettingsFactory, framework: str
) -> None:
    settings = make_settings(AGENTS=[EXAMPLES[framework]])
    async with app_client(settings) as client:
        auth = {"Authorization": f"Bearer {await login(client)}"}
        described = await client.get("/v1/agents/support", headers=auth)
        assert described.status_code == 200, described.text
        answer = await client.post(
            "/v1/agents/support/invoke", json={"input": "Where is my order A-1001?"}, headers=auth
        )
        # The framework ran through our adapter to its answer, or to a question for a human
        # (the approval examples), which invoke refuses to wait for.
        if answer.status_code == 409:
            assert answer.json()["code"] == "input_required_unsupported", answer.text
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json()["output"]
        record = await client.get("/v1/runs?limit=1", headers=auth)
        assert record.json()["items"][0]["agent"] == "support"

"""Cancel means stop for an OpenAI Agents SDK agent served by a real server process: the SSE
client leaving closes the model's stream within a second, on both routes a model call takes
(the Agent's own SDK model, and the service's LLM). The POST /v1/runs/{id}/cancel proof is in
tests/integration/test_adapter_openai_agents.py.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import login
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.leaving import (
    assert_one_upstream_stream_open,
    assert_upstream_closed_within_a_second,
    first_token_texts,
    open_frames,
)
from tests.support.server_process import ServerProcess

MODULE = "tests.support.adapters.openai_agents_agents"


def _env(route: str, fake: FakeOpenAI) -> dict[str, str]:
    if route == "own-model":
        return {"AGENTS": f"talker={MODULE}:talker", "OPENAI_AGENTS_FAKE_URL": fake.url}
    return {
        "AGENTS": f"talker={MODULE}:assistant",
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_API_KEY": "sk-test",
        "CACHE_ENABLED": "false",
    }


@pytest.mark.parametrize("route", ["own-model", "service-llm"])
def test_an_sse_client_leaving_closes_the_models_stream_within_a_second(route: str) -> None:
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.1, duration=20)
        with ServerProcess(env=_env(route, fake)) as server:
            client = httpx.Client(base_url=server.url, timeout=30)
            request = client.build_request(
                "POST",
                "/v1/agents/talker/stream",
                json={"input": "talk forever"},
                headers={"Authorization": f"Bearer {login(server.url)}"},
            )
            response = client.send(request, stream=True)
            frames = open_frames(response)  # held: dropping it would leave
            assert len(first_token_texts(frames, 3)) == 3
            assert_one_upstream_stream_open(fake, server)
            response.close()
            client.close()
            left_at = time.monotonic()
            assert_upstream_closed_within_a_second(fake, left_at)

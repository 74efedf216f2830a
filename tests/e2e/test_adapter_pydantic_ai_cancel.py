"""Cancel means stop for a Pydantic AI agent: its OpenAI chat model's stream is closed.

The agent's own OpenAIChatModel streams from tests/support/fake_openai.py (a real socket in a
thread), whose ``Slow`` reply records when the client goes away. Cancelled by
``POST /v1/runs/{id}/cancel`` (in process), and by the SSE client leaving a real server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from app.agents.registry import as_agent
from tests.conftest import SettingsFactory, app_client, login
from tests.e2e.conftest import login as login_sync
from tests.support.adapters.pydantic_ai_agents import talker_for
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.leaving import (
    assert_one_upstream_stream_open,
    assert_upstream_closed_within_a_second,
    first_token_texts,
    open_frames,
)
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines


async def test_a_cancelled_run_closes_the_models_stream_within_a_second(
    make_settings: SettingsFactory,
) -> None:
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.05, duration=20)
        async with app_client(make_settings(RATE_LIMIT_ENABLED=False)) as client:
            client.services.agents.register(as_agent(talker_for(fake.url), name=None))
            auth = {"Authorization": f"Bearer {await login(client)}"}
            stream = asyncio.create_task(
                client.post("/v1/agents/talker/stream", json={"input": "talk"}, headers=auth)
            )
            try:
                run_id = await _streaming_run(client, auth, fake)
                cancelled_at = time.monotonic()
                cancel = await client.post(f"/v1/runs/{run_id}/cancel", headers=auth)
                assert cancel.status_code == 202, cancel.text
                closed = await asyncio.to_thread(fake.disconnected.wait, 2)
                response = await asyncio.wait_for(stream, 10)
            finally:
                stream.cancel()
    assert closed, "the model's stream was never closed"
    assert fake.disconnected_at is not None and fake.disconnected_at - cancelled_at < 1.0
    frames = [f for f in parse_lines(iter(response.text.splitlines())) if f.event]
    assert frames[-1].event == "error" and frames[-1].json["code"] == "cancelled"
    assert fake.request_count == 1


async def _streaming_run(client: httpx.AsyncClient, auth: dict[str, str], fake: FakeOpenAI) -> str:
    """The run's id once the model is streaming to it."""
    deadline = time.monotonic() + 10
    while True:
        listed: dict[str, Any] = (await client.get("/v1/runs?status=running", headers=auth)).json()
        if listed["items"] and fake.request_count == 1:
            run_id: str = listed["items"][0]["run_id"]
            return run_id
        assert time.monotonic() < deadline, f"the run never reached the model: {listed}"
        await asyncio.sleep(0.02)


def test_an_sse_client_leaving_closes_the_models_stream_within_a_second() -> None:
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.1, duration=20)
        env = {
            "AGENTS": "talker=tests.support.adapters.pydantic_ai_agents:talker",
            "PYDANTIC_AI_FAKE_OPENAI_URL": fake.url,
        }
        with ServerProcess(env=env) as server:
            token = login_sync(server.url)
            client = httpx.Client(base_url=server.url, timeout=30)
            request = client.build_request(
                "POST",
                "/v1/agents/talker/stream",
                json={"input": "talk forever"},
                headers={"Authorization": f"Bearer {token}"},
            )
            response = client.send(request, stream=True)
            frames = open_frames(response)  # held: dropping it would leave
            tokens = first_token_texts(frames, 3)
            # The model's own deltas, through the framework, to the client.
            assert tokens == ["tick0 ", "tick1 ", "tick2 "]
            assert_one_upstream_stream_open(fake, server)
            response.close()
            client.close()
            closed_at = time.monotonic()
            assert_upstream_closed_within_a_second(fake, closed_at)

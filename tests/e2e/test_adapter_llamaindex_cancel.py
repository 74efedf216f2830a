"""Through a real server process: a client leaving the SSE stream of a LlamaIndex workflow
cancels the workflow, and the step's own upstream model stream is closed within a second."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import login
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.leaving import (
    assert_one_upstream_stream_open,
    assert_upstream_closed_within_a_second,
    first_token_texts,
    open_frames,
    run_when_ended,
)
from tests.support.server_process import ServerProcess


def test_leaving_a_workflows_stream_closes_its_upstream_stream_within_a_second() -> None:
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.1, duration=20)
        env = {
            "AGENTS": "tests.support.adapters.llamaindex_agents:upstream",
            "OPENAI_BASE_URL": fake.url,  # where the workflow's step streams from
        }
        with ServerProcess(env=env) as server:
            token = login(server.url)
            client = httpx.Client(base_url=server.url, timeout=30)
            request = client.build_request(
                "POST",
                "/v1/agents/upstream-flow/stream",
                json={"input": "talk forever"},
                headers={"Authorization": f"Bearer {token}"},
            )
            response = client.send(request, stream=True)
            assert response.status_code == 200
            run_id = response.headers["x-run-id"]
            frames = open_frames(response)  # held: dropping it would leave
            texts = first_token_texts(frames, 3)
            assert texts == ["tick0 ", "tick1 ", "tick2 "]  # the upstream's text, in order
            assert_one_upstream_stream_open(fake, server)
            response.close()
            closed_at = time.monotonic()
            assert_upstream_closed_within_a_second(fake, closed_at)
            run = run_when_ended(client, run_id, {"Authorization": f"Bearer {token}"})
            assert run["status"] == "cancelled" and run["error_code"] == "client_disconnected"
            client.close()

"""Through the whole stack: a client leaving an SSE stream closes the upstream LLM socket."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import login
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.leaving import (
    assert_one_upstream_stream_open,
    assert_upstream_closed_within_a_second,
)
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines


def test_sse_disconnect_closes_the_upstream_llm_connection_within_a_second() -> None:
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.1, duration=20)
        env = {
            "LLM_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.url,
            "OPENAI_API_KEY": "sk-test-upstream",
            "CACHE_ENABLED": "false",
        }
        with ServerProcess(env=env) as server:
            token = login(server.url)
            client = httpx.Client(base_url=server.url, timeout=30)
            request = client.build_request(
                "POST",
                "/v1/agents/chat/stream",
                json={"input": "talk forever"},
                headers={"Authorization": f"Bearer {token}"},
            )
            response = client.send(request, stream=True)
            frames = parse_lines(response.iter_lines())
            tokens = 0
            for frame in frames:
                if frame.event == "token":
                    tokens += 1
                    if tokens == 3:
                        break
            assert_one_upstream_stream_open(fake, server)
            response.close()
            client.close()
            closed_at = time.monotonic()
            assert_upstream_closed_within_a_second(fake, closed_at)

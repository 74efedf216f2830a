"""Through a real server process: a client leaving the SSE stream of a LangGraph graph
cancels the graph's task, and its node's upstream model stream is closed within a second."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.conftest import login
from tests.support.adapters.langgraph_agents import URL_VARIABLE
from tests.support.fake_openai import FakeOpenAI, Slow
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines


def test_leaving_a_graphs_stream_closes_its_model_stream_within_a_second() -> None:
    with FakeOpenAI() as fake:
        fake.default = Slow(interval=0.1, duration=20)
        env = {
            "AGENTS": "tests.support.adapters.langgraph_agents:slow_graph",  # named slow-graph
            URL_VARIABLE: fake.url,  # where the graph's model streams from
        }
        with ServerProcess(env=env) as server:
            token = login(server.url)
            auth = {"Authorization": f"Bearer {token}"}
            client = httpx.Client(base_url=server.url, timeout=30)
            request = client.build_request(
                "POST", "/v1/agents/slow-graph/stream", json={"input": "talk forever"}, headers=auth
            )
            response = client.send(request, stream=True)
            assert response.status_code == 200
            run_id = response.headers["x-run-id"]
            texts = []
            for frame in parse_lines(response.iter_lines()):
                if frame.event == "token":
                    texts.append(frame.json["text"])
                    if len(texts) == 3:
                        break
            assert texts == ["tick0 ", "tick1 ", "tick2 "]  # the model's deltas, in order
            assert fake.request_count == 1 and not fake.disconnected.is_set()
            response.close()
            closed_at = time.monotonic()
            assert fake.disconnected.wait(timeout=2), "the upstream stream was never closed"
            assert fake.disconnected_at is not None
            assert fake.disconnected_at - closed_at < 1.0
            run = _ended(client, run_id, auth)
            assert run["status"] == "cancelled" and run["error_code"] == "client_disconnected"
            client.close()


def _ended(client: httpx.Client, run_id: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=auth).json()
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, f"the run never ended: {run}"
        time.sleep(0.02)

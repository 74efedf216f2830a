"""A live run held by one process is reached through another (Redis pub/sub), on one Redis
and on a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import login
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame, parse_lines


def _open_stream(
    server: ServerProcess, token: str, body: dict[str, Any]
) -> tuple[httpx.Response, Iterator[Frame]]:
    client = httpx.Client(base_url=server.url, timeout=30)
    request = client.build_request(
        "POST",
        "/v1/agents/approval/stream",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    response = client.send(request, stream=True)
    return response, parse_lines(response.iter_lines())


def _next_of(frames: Iterator[Frame], *events: str) -> Frame:
    for frame in frames:
        if frame.event in events:
            return frame
    raise AssertionError(f"stream ended before {events}")


# With a run log the holder is named in the run's record; without one the run is announced
# under a key of its own (app/agents/live_runs.py): both must be reachable.
@pytest.mark.parametrize("run_log", ["true", "false"])
def test_input_and_cancel_reach_a_run_held_by_another_process(redis_url: str, run_log: str) -> None:
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"e2e-cross-{run_log}:",
        "RUN_LOG_ENABLED": run_log,
    }
    with ServerProcess(env=env) as holder, ServerProcess(env=env) as other:
        token = login(holder.url)
        auth = {"Authorization": f"Bearer {token}"}
        response, frames = _open_stream(holder, token, {"input": "Scale the web tier to 10"})
        run_id = response.headers["x-run-id"]
        choice = _next_of(frames, "input_required").json

        bad = httpx.post(
            f"{other.url}/v1/runs/{run_id}/input",
            json={"request_id": choice["request_id"], "value": "urgent"},
            headers=auth,
        )
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
        stale = httpx.post(
            f"{other.url}/v1/runs/{run_id}/input",
            json={"request_id": "not-pending", "value": "high"},
            headers=auth,
        )
        assert stale.status_code == 404 and stale.json()["code"] == "input_request_not_found"
        ok = httpx.post(
            f"{other.url}/v1/runs/{run_id}/input",
            json={"request_id": choice["request_id"], "value": "normal"},
            headers=auth,
        )
        assert ok.status_code == 202, ok.text
        confirm = _next_of(frames, "input_required").json
        assert confirm["kind"] == "confirm"
        httpx.post(
            f"{other.url}/v1/runs/{run_id}/input",
            json={"request_id": confirm["request_id"], "value": "yes"},
            headers=auth,
        ).raise_for_status()
        done = _next_of(frames, "run_completed", "error")
        assert done.event == "run_completed"
        assert done.json["output"].startswith("Approved at normal priority")
        response.close()

        # Cancel from the other process; another principal cannot touch the run.
        response, frames = _open_stream(holder, token, {"input": "Drop the cache"})
        run_id = response.headers["x-run-id"]
        _next_of(frames, "input_required")
        key = httpx.post(
            f"{holder.url}/v1/auth/api-keys",
            json={"name": "intruder", "scopes": ["agents:run"]},
            headers=auth,
        ).json()["key"]
        intruder = httpx.post(f"{other.url}/v1/runs/{run_id}/cancel", headers={"X-API-Key": key})
        assert intruder.status_code == 404
        cancelled = httpx.post(f"{other.url}/v1/runs/{run_id}/cancel", headers=auth)
        assert cancelled.status_code == 202
        end = _next_of(frames, "run_completed", "error")
        assert end.event == "error" and end.json["code"] == "cancelled"
        response.close()
        gone = httpx.post(f"{other.url}/v1/runs/{run_id}/cancel", headers=auth)
        assert gone.status_code == 404

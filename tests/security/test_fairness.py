"""Finding 4: one principal could take every worker slot and unbounded foreground runs.

One API key parked 8 `approval` tasks in `input_required`, holding all 8 worker slots, and
another principal's task stayed queued until they were cancelled; 60 concurrent SSE runs
from one key were all accepted. Now: per-principal caps on in-flight foreground runs and on
active tasks, shared by every replica through Redis with leases (a killed replica's slots
come back after the lease), tasks dispatched round-robin across principals, and a task
waiting for an answer does not count against its worker's concurrency.

Real API and worker processes on a private redis-server; the memory-mode tests drive one
in-process app (the same semantics without Redis).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.agents.run_request import RunRequest
from app.security.principals import Principal
from tests.conftest import SettingsFactory, app_client
from tests.security.conftest import bearer, login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess
from tests.support.sse import parse_lines
from tests.support.worker_process import WorkerProcess

Auth = dict[str, str]
# A run that lasts (100 tokens at 5/s) until the test closes it.
SLOW_MODEL = {"OFFLINE_TOKENS_PER_SECOND": "5", "OFFLINE_RESPONSE_TOKENS": "100"}
LEASE_SECONDS = 2


@pytest.fixture
def shared_env(redis_server: RedisServer) -> dict[str, str]:
    """Settings for processes sharing one Redis under a key prefix of their own."""
    redis_server.start()
    return {
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"fairness-{uuid.uuid4().hex[:10]}:",
        "RATE_LIMIT_ENABLED": "false",  # the tests poll; rate limits have their own tests
        "WORKER_ENABLED": "false",
    }


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as processes:
        yield processes


def _api_key(server: ServerProcess, admin: Auth, *scopes: str) -> Auth:
    response = httpx.post(
        f"{server.url}/v1/auth/api-keys",
        json={"name": f"principal-{uuid.uuid4().hex[:6]}", "scopes": list(scopes)},
        headers=admin,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


class OpenStream:
    """POST .../stream held open after its run_started frame (the run holds its slot)."""

    def __init__(self, server: ServerProcess, auth: Auth) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=30)
        request = self.client.build_request(
            "POST", "/v1/agents/chat/stream", json={"input": "hold a slot"}, headers=auth
        )
        self.response = self.client.send(request, stream=True)
        self.frames = parse_lines(self.response.iter_lines())

    def started(self) -> OpenStream:
        assert self.response.status_code == 200, self.response.read()
        assert next(self.frames).event == "run_started"
        return self

    def close(self) -> None:
        self.response.close()
        self.client.close()


def _try_run(server: ServerProcess, auth: Auth, route: str = "stream") -> httpx.Response:
    """Start a run; an accepted one is closed at once (cancelled), a refusal read."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        request = client.build_request(
            "POST", f"/v1/agents/chat/{route}", json={"input": "one more"}, headers=auth
        )
        response = client.send(request, stream=True)
        if response.status_code != 200:
            response.read()
        response.close()
        return response


def _assert_capped(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 429, response.status_code
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    body: dict[str, Any] = response.json()
    assert body["code"] == "too_many_concurrent_runs"
    assert body["limit"] >= 1
    return body


def test_in_flight_runs_are_capped_per_principal_across_replicas_and_leases_expire(
    shared_env: dict[str, str], stack: ExitStack
) -> None:
    env = {
        **shared_env,
        **SLOW_MODEL,
        "MAX_CONCURRENT_RUNS_PER_PRINCIPAL": "2",
        "CONCURRENCY_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    one = stack.enter_context(ServerProcess(env=env))
    two = stack.enter_context(ServerProcess(env=env))
    admin = bearer(login(one.url))
    other = _api_key(one, admin, "agents:run")

    first = OpenStream(one, admin).started()
    second = OpenStream(two, admin).started()
    stack.callback(first.close)
    stack.callback(second.close)
    # The cap is the principal's, whatever replica and route the third run comes through.
    body = _assert_capped(_try_run(two, admin))
    assert "2" in body["detail"]
    _assert_capped(_try_run(one, admin, "invoke"))
    # Another principal has a cap of its own.
    OpenStream(two, other).started().close()

    # A run that ends gives its slot back at once.
    second.close()
    deadline = time.monotonic() + 5
    while True:
        retry = OpenStream(two, admin)
        if retry.response.status_code == 200:
            break
        retry.close()
        assert time.monotonic() < deadline, "a finished run kept its slot"
        time.sleep(0.05)
    retry.started()
    stack.callback(retry.close)

    # A replica killed with its run live never releases the slot: its lease runs out.
    assert one.process is not None
    one.process.kill()
    one.process.wait()
    killed_at = time.monotonic()
    first.close()
    _assert_capped(_try_run(two, admin, "invoke"))
    while True:
        late = OpenStream(two, admin)
        if late.response.status_code == 200:
            break
        late.close()
        assert time.monotonic() - killed_at < LEASE_SECONDS + 3, "the dead replica's slot leaked"
        time.sleep(0.1)
    freed_after = time.monotonic() - killed_at
    late.started().close()
    assert freed_after <= LEASE_SECONDS + 3


def _submit(
    server: ServerProcess, auth: Auth, agent: str, text: str, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/tasks",
        json={"agent": agent, "input": text},
        headers={**auth, **headers},
        timeout=10,
    )


def _submit_id(server: ServerProcess, auth: Auth, agent: str, text: str) -> str:
    response = _submit(server, auth, agent, text)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _task(server: ServerProcess, auth: Auth, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait_for(
    server: ServerProcess,
    auth: Auth,
    task_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 10,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = _task(server, auth, task_id)
        if predicate(info):
            return info
        assert time.monotonic() < deadline, f"task never reached the expected state: {info}"
        time.sleep(0.05)


def _wait_status(
    server: ServerProcess, auth: Auth, task_id: str, *statuses: str, timeout: float = 10
) -> dict[str, Any]:
    return _wait_for(server, auth, task_id, lambda t: t["status"] in statuses, timeout)


def test_active_tasks_are_capped_per_principal_across_replicas(
    shared_env: dict[str, str], stack: ExitStack
) -> None:
    env = {**shared_env, "MAX_ACTIVE_TASKS_PER_PRINCIPAL": "3"}  # no worker: tasks stay queued
    one = stack.enter_context(ServerProcess(env=env))
    two = stack.enter_context(ServerProcess(env=env))
    admin = bearer(login(one.url))
    other = _api_key(one, admin, "tasks:write", "tasks:read")

    keyed = _submit(one, admin, "chat", "first", **{"Idempotency-Key": "fairness-1"})
    assert keyed.status_code == 202
    first = keyed.json()["task_id"]
    _submit_id(two, admin, "chat", "second")
    _submit_id(one, admin, "chat", "third")
    body = _assert_capped(_submit(two, admin, "chat", "fourth"))
    assert "3" in body["detail"]
    # A replayed submission is the same task, not a new one: it is not refused.
    replay = _submit(two, admin, "chat", "first", **{"Idempotency-Key": "fairness-1"})
    assert replay.status_code == 202 and replay.json()["task_id"] == first
    # Another principal has a cap of its own.
    _submit_id(two, other, "chat", "someone else")
    # A finished task frees its place at once, on every replica.
    assert httpx.delete(f"{one.url}/v1/tasks/{first}", headers=admin).status_code == 202
    _submit_id(two, admin, "chat", "fourth, now there is room")
    _assert_capped(_submit(one, admin, "chat", "fifth"))


def test_tasks_waiting_for_input_do_not_block_another_principals_task(
    shared_env: dict[str, str], stack: ExitStack
) -> None:
    concurrency = 2
    env = {**shared_env, "WORKER_CONCURRENCY": str(concurrency)}
    api = stack.enter_context(ServerProcess(env=env))
    worker = WorkerProcess(env={**env, "WORKER_SHUTDOWN_GRACE_SECONDS": "0.5"})
    stack.callback(worker.close)
    worker.start()
    admin = bearer(login(api.url))
    other = _api_key(api, admin, "tasks:write", "tasks:read")

    # More approval tasks than the worker has slots: every one gets to its question.
    waiting = [_submit_id(api, admin, "approval", f"Restart service {i}") for i in range(3)]
    for task_id in waiting:
        _wait_status(api, admin, task_id, "input_required")
    # Another principal's task runs and completes within seconds.
    submitted = time.monotonic()
    theirs = _submit_id(api, other, "chat", "am I starved?")
    done = _wait_status(api, other, theirs, "completed", "failed", timeout=5)
    assert done["status"] == "completed", done
    assert time.monotonic() - submitted < 5
    # The parked tasks resume where they stopped once answered.
    for task_id in waiting:
        choice = _task(api, admin, task_id)["pending_input"]
        answer = {"request_id": choice["request_id"], "value": "high"}
        assert (
            httpx.post(f"{api.url}/v1/tasks/{task_id}/input", json=answer, headers=admin)
        ).status_code == 202
    for task_id in waiting:
        info = _wait_for(
            api, admin, task_id, lambda t: (t["pending_input"] or {}).get("kind") == "confirm"
        )
        answer = {"request_id": info["pending_input"]["request_id"], "value": True}
        assert (
            httpx.post(f"{api.url}/v1/tasks/{task_id}/input", json=answer, headers=admin)
        ).status_code == 202
    for task_id in waiting:
        final = _wait_status(api, admin, task_id, "completed", "failed")
        assert final["status"] == "completed" and final["attempts"] == 1, final


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_one_principals_backlog_does_not_starve_another(
    shared_env: dict[str, str], stack: ExitStack
) -> None:
    """20 queued tasks of one principal, then one of another: the second principal's task
    is dispatched next-but-one (round-robin), not after the 18 still waiting."""
    env = {
        **shared_env,
        "WORKER_CONCURRENCY": "2",
        "OFFLINE_LATENCY_MS": "300",  # each task takes ~0.3 s
        "CACHE_ENABLED": "false",
    }
    api = stack.enter_context(ServerProcess(env=env))
    worker = WorkerProcess(env={**env, "WORKER_SHUTDOWN_GRACE_SECONDS": "0.5"})
    stack.callback(worker.close)
    worker.start()
    admin = bearer(login(api.url))
    other = _api_key(api, admin, "tasks:write", "tasks:read")

    backlog = [_submit_id(api, admin, "chat", f"backlog {i}") for i in range(20)]
    _wait_status(api, admin, backlog[0], "running", "completed")
    theirs = _submit_id(api, other, "chat", "just one")
    mine = _wait_status(api, other, theirs, "completed", timeout=10)
    submitted, started = _ts(mine["submitted_at"]), _ts(mine["started_at"])
    ahead = [
        info
        for info in (_task(api, admin, task_id) for task_id in backlog)
        if info["started_at"] and submitted < _ts(info["started_at"]) < started
    ]
    # Round-robin: at most the one task already handed to the queue, plus one in a race.
    assert len(ahead) <= 2, f"{len(ahead)} of the backlog started first"
    assert started - submitted < 2.0
    for task_id in backlog:
        httpx.delete(f"{api.url}/v1/tasks/{task_id}", headers=admin)


# -- memory mode: the same rules in one process ------------------------------------------------


async def _wait_task(
    client: httpx.AsyncClient, auth: Auth, task_id: str, *statuses: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        if info["status"] in statuses:
            return info
        assert time.monotonic() < deadline, f"task never reached {statuses}: {info}"
        await asyncio.sleep(0.02)


async def test_memory_mode_caps_runs_and_tasks_and_parks_waiting_tasks(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(
        RATE_LIMIT_ENABLED=False,
        WORKER_CONCURRENCY=1,
        MAX_CONCURRENT_RUNS_PER_PRINCIPAL=1,
        MAX_ACTIVE_TASKS_PER_PRINCIPAL=2,
        WORKER_SHUTDOWN_GRACE_SECONDS=0.2,
    )
    async with app_client(settings) as client:
        token = (
            await client.post(
                "/v1/auth/token", data={"username": "admin", "password": "admin-test-password"}
            )
        ).json()["access_token"]
        admin = bearer(token)
        created = await client.post(
            "/v1/auth/api-keys",
            json={"name": "other", "scopes": ["tasks:write", "tasks:read", "agents:run"]},
            headers=admin,
        )
        other = {"X-API-Key": created.json()["key"]}

        # Two approval tasks on a worker with one slot: both get to their question.
        waiting = []
        for i in range(2):
            response = await client.post(
                "/v1/tasks", json={"agent": "approval", "input": f"act {i}"}, headers=admin
            )
            assert response.status_code == 202, response.text
            waiting.append(response.json()["task_id"])
        for task_id in waiting:
            await _wait_task(client, admin, task_id, "input_required")
        refused = await client.post(
            "/v1/tasks", json={"agent": "chat", "input": "third"}, headers=admin
        )
        _assert_capped(refused)
        # Another principal's task runs on the one slot.
        theirs = await client.post(
            "/v1/tasks", json={"agent": "chat", "input": "mine"}, headers=other
        )
        assert theirs.status_code == 202
        await _wait_task(client, other, theirs.json()["task_id"], "completed", timeout=5)
        # Foreground runs: one at a time per principal, released when the run ends.
        services = client.services
        holder = await services.runs.start(
            RunRequest(agent="approval", input="wait", principal=Principal.from_id("user:admin"))
        )
        try:
            _assert_capped(
                await client.post("/v1/agents/chat/invoke", json={"input": "x"}, headers=admin)
            )
            ok = await client.post("/v1/agents/chat/invoke", json={"input": "x"}, headers=other)
            assert ok.status_code == 200, ok.text
        finally:
            holder.cancel()
            await holder.wait()
        ok = await client.post("/v1/agents/chat/invoke", json={"input": "x"}, headers=admin)
        assert ok.status_code == 200, ok.text
        for task_id in waiting:
            await client.delete(f"/v1/tasks/{task_id}", headers=admin)


async def test_redis_down_the_run_cap_follows_the_rate_limit_failure_policy(
    make_settings: SettingsFactory,
) -> None:
    """Open (the default): runs start uncounted while Redis is away. Closed: 503."""
    redis = RedisServer()
    try:
        for fail_open, expected in ((True, 200), (False, 503)):
            redis.start()
            settings = make_settings(
                REDIS_URL=redis.url,
                RATE_LIMIT_ENABLED=False,  # the limiter's own policy has its tests
                RATE_LIMIT_FAIL_OPEN=fail_open,
                MAX_CONCURRENT_RUNS_PER_PRINCIPAL=1,
                WORKER_ENABLED=False,
            )
            async with app_client(settings) as client:
                login = await client.post(
                    "/v1/auth/token",
                    data={"username": "admin", "password": "admin-test-password"},
                )
                admin = bearer(login.json()["access_token"])
                redis.stop()
                response = await client.post(
                    "/v1/agents/chat/invoke",
                    json={"input": "Redis is away"},
                    headers={**admin, "Cache-Control": "no-cache"},
                )
                assert response.status_code == expected, response.text
                if expected == 503:
                    assert response.json()["code"] == "dependency_unavailable"
                    assert response.headers["Retry-After"] == "1"
    finally:
        redis.close()


async def test_a_worker_parks_at_most_worker_max_parked_tasks(
    make_settings: SettingsFactory,
) -> None:
    """Parked coroutines cost memory: past WORKER_MAX_PARKED they count against the slots."""
    settings = make_settings(
        RATE_LIMIT_ENABLED=False,
        WORKER_CONCURRENCY=1,
        WORKER_MAX_PARKED=1,
        WORKER_SHUTDOWN_GRACE_SECONDS=0.2,
    )
    async with app_client(settings) as client:
        login = await client.post(
            "/v1/auth/token", data={"username": "admin", "password": "admin-test-password"}
        )
        admin = bearer(login.json()["access_token"])
        ids = []
        for i in range(3):
            response = await client.post(
                "/v1/tasks", json={"agent": "approval", "input": f"act {i}"}, headers=admin
            )
            ids.append(response.json()["task_id"])
        # One parked task is left out of the count, so a second one runs (and parks too).
        for task_id in ids[:2]:
            await _wait_task(client, admin, task_id, "input_required")
        await asyncio.sleep(0.5)  # the worker loop would take the third within milliseconds
        third = (await client.get(f"/v1/tasks/{ids[2]}", headers=admin)).json()
        assert third["status"] == "queued"
        assert "tasks_parked 2.0" in (await client.get("/metrics")).text
        # One fewer parked task: the third runs.
        await client.delete(f"/v1/tasks/{ids[0]}", headers=admin)
        await _wait_task(client, admin, ids[2], "input_required")
        for task_id in ids[1:]:
            await client.delete(f"/v1/tasks/{task_id}", headers=admin)

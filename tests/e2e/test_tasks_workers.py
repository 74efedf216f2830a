"""Background tasks across real processes: API replicas with WORKER_ENABLED=false and
`python -m app.entrypoints.cli worker` processes sharing a private redis-server (some tests
also on the private Redis Cluster). Workers are killed with SIGKILL (a crashed pod) or
stopped with SIGTERM (a rolling update); no task may be lost."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import login
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import RedisClusterTopology
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame, parse_lines
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

Auth = dict[str, str]
# A slow model: 100 tokens at 5/s take 20 s, far longer than any test waits for one attempt.
SLOW = {"OFFLINE_TOKENS_PER_SECOND": "5", "OFFLINE_RESPONSE_TOKENS": "100"}
FAST = {"OFFLINE_TOKENS_PER_SECOND": "0", "OFFLINE_RESPONSE_TOKENS": "100"}


class Cluster:
    """Processes on one private Redis under one key prefix; all stopped at the end."""

    def __init__(self, stack: ExitStack, redis_url: str, **settings: str) -> None:
        self._stack = stack
        self.env = {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"e2e-tasks-{uuid.uuid4().hex[:10]}:",
            "WORKER_ENABLED": "false",
            "RATE_LIMIT_ENABLED": "false",  # the tests poll; rate limits have their own tests
            **settings,
        }

    def api(self) -> ServerProcess:
        return self._stack.enter_context(ServerProcess(env=self.env))

    def worker(self, **settings: str) -> WorkerProcess:
        """Launched, not yet waited for: call wait_ready() (lets processes boot in parallel)."""
        worker = WorkerProcess(env={**self.env, **settings})
        self._stack.callback(worker.close)
        return worker.launch()


ClusterFactory = Callable[..., Cluster]


# For a test that runs on both Redis topologies: a private redis-server, the Redis Cluster.
ON_BOTH = pytest.mark.parametrize("cluster", ["redis", "cluster"], indirect=True)


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterFactory]:
    """Processes on a private redis-server, or (param "cluster") on the session's private
    Redis Cluster, each Cluster under a key prefix of its own."""
    with ExitStack() as stack:
        if getattr(request, "param", "redis") == "cluster":
            topology: RedisClusterTopology = request.getfixturevalue("redis_cluster")
            url = topology.url
        else:
            redis = RedisServer()
            stack.callback(redis.close)
            redis.start()
            url = redis.url
        yield lambda **settings: Cluster(stack, url, **settings)


def _auth(api: ServerProcess) -> Auth:
    return {"Authorization": f"Bearer {login(api.url)}"}


def _submit(api: ServerProcess, auth: Auth, agent: str, text: str) -> str:
    response = httpx.post(
        f"{api.url}/v1/tasks", json={"agent": agent, "input": text}, headers=auth, timeout=10
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/tasks/{response.json()['task_id']}"
    return str(response.json()["task_id"])


def _task(api: ServerProcess, auth: Auth, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/v1/tasks/{task_id}", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait_for(
    api: ServerProcess,
    auth: Auth,
    task_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = _task(api, auth, task_id)
        if predicate(info):
            return info
        assert time.monotonic() < deadline, f"task never reached the expected state: {info}"
        time.sleep(0.05)


def _wait_status(
    api: ServerProcess, auth: Auth, task_id: str, *statuses: str, timeout: float = 20
) -> dict[str, Any]:
    return _wait_for(api, auth, task_id, lambda t: t["status"] in statuses, timeout)


def _result(api: ServerProcess, auth: Auth, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/v1/tasks/{task_id}/result", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class EventStream:
    """GET /v1/tasks/{id}/events as an iterator of event frames (keep-alives skipped)."""

    def __init__(
        self, api: ServerProcess, auth: Auth, task_id: str, last_event_id: str | None = None
    ) -> None:
        headers = dict(auth)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._client = httpx.Client(base_url=api.url, timeout=30)
        self.response = self._client.send(
            self._client.build_request("GET", f"/v1/tasks/{task_id}/events", headers=headers),
            stream=True,
        )
        assert self.response.status_code == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._frames = parse_lines(self.response.iter_lines())

    def __iter__(self) -> Iterator[Frame]:
        return (frame for frame in self._frames if frame.event is not None)

    def take(self, count: int) -> list[Frame]:
        frames: list[Frame] = []
        for frame in self:
            frames.append(frame)
            if len(frames) == count:
                break
        return frames

    def rest(self) -> list[Frame]:
        return list(self)

    def close(self) -> None:
        self.response.close()
        self._client.close()


def _read_all(api: ServerProcess, auth: Auth, task_id: str, **kw: Any) -> list[Frame]:
    stream = EventStream(api, auth, task_id, **kw)
    try:
        return stream.rest()
    finally:
        stream.close()


def _assert_one_log(frames: list[Frame], *, ends_with: str) -> None:
    """ids 1..N with no gap or repeat; each frame's id is its event's seq; one terminal end."""
    ids = [int(frame.id or 0) for frame in frames]
    assert ids == list(range(1, len(frames) + 1)), ids
    assert [frame.json["seq"] for frame in frames] == ids
    assert frames[0].event == "run_started"
    assert frames[-1].event == ends_with
    terminal = [frame for frame in frames if frame.event in ("run_completed", "error")]
    assert terminal == [frames[-1]]


def _attempts(frames: list[Frame]) -> list[list[Frame]]:
    """Split a task's log at each run_started: one list per attempt."""
    runs: list[list[Frame]] = []
    for frame in frames:
        if frame.event == "run_started":
            runs.append([])
        runs[-1].append(frame)
    return runs


# -- the happy path, from any replica ---------------------------------------------------------


@ON_BOTH
def test_submit_poll_result_and_resume_events_on_another_replica(cluster: ClusterFactory) -> None:
    c = cluster()
    # 4 s of answer: still running after the checks below on a loaded machine
    worker = c.worker(OFFLINE_TOKENS_PER_SECOND="10", OFFLINE_RESPONSE_TOKENS="40")
    first, second = c.api(), c.api()
    worker.wait_ready()
    auth = _auth(first)

    task_id = _submit(first, auth, "chat", "Explain leases in one long paragraph")
    stream = EventStream(first, auth, task_id)
    try:
        head = stream.take(8)
    finally:
        stream.close()  # the client goes away midway
    assert [frame.event for frame in head[:2]] == ["run_started", "token"]
    assert _task(first, auth, task_id)["status"] == "running"
    pending = httpx.get(f"{second.url}/v1/tasks/{task_id}/result", headers=auth)
    assert pending.status_code == 202 and pending.headers["retry-after"] == "1"

    # Another replica picks up exactly where the client left off.
    tail = _read_all(second, auth, task_id, last_event_id=head[-1].id)
    frames = head + tail
    _assert_one_log(frames, ends_with="run_completed")
    assert len(_attempts(frames)) == 1
    tokens = [frame.json["text"] for frame in frames if frame.event == "token"]
    assert len(tokens) == 40
    done = frames[-1].json
    assert done["output"] == "".join(tokens)

    info = _wait_status(second, auth, task_id, "completed", timeout=5)
    assert info["attempts"] == 1 and info["steps_taken"] == 1
    result = _result(first, auth, task_id)
    assert result["success"] is True and result["output"] == done["output"]
    assert result["usage"] == done["usage"]

    # A full replay, and a replay by query parameter, from either replica: the same log.
    assert [f.data for f in _read_all(first, auth, task_id)] == [f.data for f in frames]
    resumed = _read_all(second, auth, task_id, last_event_id=str(len(frames) - 3))
    assert [f.data for f in resumed] == [f.data for f in frames[-3:]]
    listed = httpx.get(f"{second.url}/v1/tasks?status=completed", headers=auth).json()
    assert [item["task_id"] for item in listed["items"]] == [task_id]


def test_an_idle_worker_picks_a_task_up_at_once(cluster: ClusterFactory) -> None:
    c = cluster()
    worker = c.worker()
    api = c.api()
    worker.wait_ready()
    auth = _auth(api)
    time.sleep(0.5)  # the worker is now blocked reading the queue
    task_id = _submit(api, auth, "chat", "how fast is dispatch?")
    info = _wait_for(api, auth, task_id, lambda t: t["started_at"] is not None, timeout=5)
    waited = datetime.fromisoformat(info["started_at"]) - datetime.fromisoformat(
        info["submitted_at"]
    )
    assert waited.total_seconds() < 0.2, waited
    _wait_status(api, auth, task_id, "completed", timeout=10)


# -- a worker dies: lease, redelivery, bounded attempts ---------------------------------------


@ON_BOTH
def test_a_killed_workers_task_is_completed_by_another_worker(cluster: ClusterFactory) -> None:
    c = cluster(TASK_LEASE_SECONDS="2")
    doomed = c.worker(**SLOW)
    api = c.api()
    doomed.wait_ready()
    auth = _auth(api)
    task_id = _submit(api, auth, "chat", "A long essay about leases")
    stream = EventStream(api, auth, task_id)
    try:
        head = stream.take(4)  # run_started and three tokens: the first attempt is under way
        assert [frame.event for frame in head] == ["run_started", "token", "token", "token"]
        running = _task(api, auth, task_id)
        assert running["status"] == "running" and running["attempts"] == 1
        rescuer = c.worker(**FAST).wait_ready()  # idle; must not touch a task with a live lease
        assert _task(api, auth, task_id)["attempts"] == 1

        doomed.kill()
        killed_at = time.monotonic()
        # The same live stream continues with the second attempt: nothing is lost.
        frames = head + stream.rest()
    finally:
        stream.close()
    recovered_in = time.monotonic() - killed_at
    assert recovered_in < 4 * 2 + 2, recovered_in  # a few lease periods

    _assert_one_log(frames, ends_with="run_completed")
    first_try, second_try = _attempts(frames)
    assert not any(frame.event in ("run_completed", "error") for frame in first_try)
    tokens = [frame.json["text"] for frame in second_try if frame.event == "token"]
    assert len(tokens) == 100 and second_try[-1].json["output"] == "".join(tokens)
    assert second_try[0].json["run_id"] == task_id

    info = _wait_status(api, auth, task_id, "completed", timeout=5)
    assert info["attempts"] == 2 and info["error_code"] is None
    result = _result(api, auth, task_id)
    assert result["success"] is True and result["output"] == "".join(tokens)
    assert _read_all(api, auth, task_id)[-1].data == frames[-1].data
    assert rescuer.metric("task_redeliveries_total") == 1
    assert rescuer.metric("tasks_finished_total", 'status="completed"') == 1


def test_a_parked_task_keeps_its_lease_and_is_asked_again_after_its_worker_dies(
    cluster: ClusterFactory,
) -> None:
    """A task waiting for input holds no worker slot but keeps its lease: an idle worker
    leaves it alone. Its agent lives on the worker that parked it, so when that worker dies
    the task is redelivered and asks again (a new request id), and the answer finishes it."""
    c = cluster(TASK_LEASE_SECONDS="2", WORKER_CONCURRENCY="1")
    doomed = c.worker()
    api = c.api()
    doomed.wait_ready()
    auth = _auth(api)
    task_id = _submit(api, auth, "approval", "Drain the old node pool")
    first = _wait_status(api, auth, task_id, "input_required")["pending_input"]
    assert doomed.metric("tasks_parked") == 1
    rescuer = c.worker().wait_ready()
    time.sleep(3)  # past the lease: a parked task's lease is renewed like a running one's
    assert _task(api, auth, task_id)["attempts"] == 1

    doomed.kill()
    again = _wait_for(
        api,
        auth,
        task_id,
        lambda t: (t["pending_input"] or {}).get("request_id") not in (None, first["request_id"]),
        timeout=4 * 2 + 2,
    )
    assert again["attempts"] == 2 and again["status"] == "input_required"
    assert again["pending_input"]["prompt"] == first["prompt"]
    stale = {"request_id": first["request_id"], "value": "low"}
    answered = httpx.post(f"{api.url}/v1/tasks/{task_id}/input", json=stale, headers=auth)
    assert answered.status_code == 404  # the dead worker's question went with it
    choice = {"request_id": again["pending_input"]["request_id"], "value": "low"}
    assert (
        httpx.post(f"{api.url}/v1/tasks/{task_id}/input", json=choice, headers=auth).status_code
        == 202
    )
    confirm = _wait_for(
        api,
        auth,
        task_id,
        lambda t: (t["pending_input"] or {}).get("kind") == "confirm",
        timeout=10,
    )["pending_input"]
    yes = {"request_id": confirm["request_id"], "value": True}
    assert (
        httpx.post(f"{api.url}/v1/tasks/{task_id}/input", json=yes, headers=auth).status_code == 202
    )
    done = _wait_status(api, auth, task_id, "completed", "failed")
    assert done["status"] == "completed" and done["attempts"] == 2
    assert rescuer.metric("task_redeliveries_total") == 1


def test_after_max_attempts_a_lost_task_fails_with_worker_lost(cluster: ClusterFactory) -> None:
    c = cluster(TASK_LEASE_SECONDS="2", MAX_ATTEMPTS="1")
    doomed = c.worker(**SLOW)
    api = c.api()
    doomed.wait_ready()
    auth = _auth(api)
    task_id = _submit(api, auth, "chat", "this attempt will be the only one")
    _wait_for(api, auth, task_id, lambda t: t["status"] == "running", timeout=10)
    time.sleep(0.5)

    doomed.kill()
    killed_at = time.monotonic()
    successor = c.worker(**SLOW).wait_ready()
    info = _wait_status(api, auth, task_id, "failed", "completed", timeout=4 * 2 + 10)
    assert time.monotonic() - killed_at < 4 * 2 + 5
    assert info["status"] == "failed" and info["error_code"] == "worker_lost"
    assert info["attempts"] == 1 and info["finished_at"] is not None
    result = _result(api, auth, task_id)
    assert result["success"] is False and result["output"] is None
    assert result["error_code"] == "worker_lost"

    frames = _read_all(api, auth, task_id)
    _assert_one_log(frames, ends_with="error")
    assert frames[-1].json["code"] == "worker_lost"
    assert len(_attempts(frames)) == 1  # it was not run a second time
    assert successor.metric("agent_runs_total", 'agent="chat",status="completed"') == 0
    assert successor.metric("tasks_finished_total", 'status="failed"') == 1


# -- cancel stops the coroutine and its LLM call ----------------------------------------------


def test_cancel_stops_a_running_task_and_its_llm_call_within_a_second(
    cluster: ClusterFactory,
) -> None:
    c = cluster()
    worker = c.worker(OFFLINE_LATENCY_MS="10000")
    api = c.api()
    worker.wait_ready()
    auth = _auth(api)
    task_id = _submit(api, auth, "chat", "think for a very long time")
    _wait_status(api, auth, task_id, "running", timeout=10)
    assert worker.metric("agent_active_runs", 'agent="chat"') == 1

    response = httpx.delete(f"{api.url}/v1/tasks/{task_id}", headers=auth)
    asked_at = time.monotonic()
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    info = _wait_status(api, auth, task_id, "cancelled", timeout=1.0)
    deadline = asked_at + 1.0
    while time.monotonic() < deadline:
        if worker.metric("agent_runs_total", 'agent="chat",status="cancelled"') == 1:
            break
        time.sleep(0.05)
    assert worker.metric("agent_runs_total", 'agent="chat",status="cancelled"') == 1
    assert worker.metric("agent_active_runs", 'agent="chat"') == 0
    assert time.monotonic() - asked_at < 1.5
    assert info["error_code"] == "cancelled" and info["finished_at"] is not None

    again = httpx.delete(f"{api.url}/v1/tasks/{task_id}", headers=auth)
    assert again.status_code in (200, 202)
    assert again.json()["status"] == "cancelled"
    assert _task(api, auth, task_id) == info
    result = _result(api, auth, task_id)
    assert result["success"] is False and result["error_code"] == "cancelled"
    frames = _read_all(api, auth, task_id)
    _assert_one_log(frames, ends_with="error")
    assert [frame.event for frame in frames] == ["run_started", "error"]
    assert frames[-1].json["code"] == "cancelled"
    assert worker.metric("tasks_finished_total", 'status="cancelled"') == 1
    assert worker.metric("agent_runs_total", 'agent="chat",status="completed"') == 0


# -- a worker stopped on purpose hands its task over at once ----------------------------------


@ON_BOTH
def test_sigterm_releases_a_running_task_to_another_worker_at_once(cluster: ClusterFactory) -> None:
    # A 30 s lease: only the release on shutdown can explain a quick handover.
    c = cluster(TASK_LEASE_SECONDS="30", WORKER_SHUTDOWN_GRACE_SECONDS="1")
    leaving = c.worker(**SLOW)
    api = c.api()
    leaving.wait_ready()
    auth = _auth(api)
    task_id = _submit(api, auth, "chat", "too long to finish before the pod goes")
    stream = EventStream(api, auth, task_id)
    try:
        head = stream.take(3)
        assert [frame.event for frame in head] == ["run_started", "token", "token"]
        assert _task(api, auth, task_id)["attempts"] == 1
        staying = c.worker(**FAST).wait_ready()

        leaving.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert leaving.wait(timeout=10) == 0
        assert time.monotonic() - stopped_at < 1 + 3  # the grace period, then out
        frames = head + stream.rest()
    finally:
        stream.close()
    handed_over_in = time.monotonic() - stopped_at
    assert handed_over_in < 1 + 5, handed_over_in  # far less than the 30 s lease
    assert "task_released" in leaving.logs()

    _assert_one_log(frames, ends_with="run_completed")
    assert [frame.event for frame in frames].count("error") == 0  # no failure was recorded
    first_try, second_try = _attempts(frames)
    tokens = [frame.json["text"] for frame in second_try if frame.event == "token"]
    assert len(tokens) == 100
    info = _wait_status(api, auth, task_id, "completed", timeout=5)
    # A released task goes back to the queue with its attempt given back.
    assert info["attempts"] == 1
    assert _result(api, auth, task_id)["output"] == "".join(tokens)
    assert staying.metric("task_redeliveries_total") == 0
    assert staying.metric("tasks_finished_total", 'status="completed"') == 1


def test_sigterm_without_grace_leaves_the_task_to_the_next_worker(cluster: ClusterFactory) -> None:
    """WORKER_SHUTDOWN_GRACE_SECONDS=0 (allowed): the task is released at once, while the
    stopping worker may still be blocked reading the queue; it must not take it back."""
    c = cluster(TASK_LEASE_SECONDS="30", WORKER_SHUTDOWN_GRACE_SECONDS="0")
    leaving = c.worker(**SLOW)
    api = c.api()
    leaving.wait_ready()
    auth = _auth(api)
    task_id = _submit(api, auth, "chat", "released with no grace at all")
    _wait_for(api, auth, task_id, lambda t: t["status"] == "running", timeout=10)
    time.sleep(0.5)

    leaving.signal(signal.SIGTERM)
    assert leaving.wait(timeout=10) == 0
    released = _task(api, auth, task_id)
    assert released["status"] == "queued" and released["attempts"] == 0, released
    assert released["error_code"] is None

    restarted_at = time.monotonic()
    c.worker(**FAST).wait_ready()
    info = _wait_status(api, auth, task_id, "completed", "failed", timeout=8)
    assert info["status"] == "completed" and info["attempts"] == 1, info
    assert time.monotonic() - restarted_at < 8  # not after the 30 s lease
    frames = _read_all(api, auth, task_id)
    _assert_one_log(frames, ends_with="run_completed")
    assert [frame.event for frame in frames].count("error") == 0

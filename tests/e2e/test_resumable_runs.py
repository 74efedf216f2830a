"""Every run is durable and resumable (issue 10), against real processes and a real Redis.

Two API processes (A, B) share one private redis-server and a paced offline model (a full
chat answer streams 100 tokens in 2.5 s; ``max_tokens`` shortens one), so runs are started on
one and followed, resumed or contested from the other. Two more processes on the same Redis
(other key prefixes) serve the cases that need another configuration: a fast and long
answer (the slow-reader case) and a log that keeps only about 100 events (retention).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.agents.builtin.chat import SYSTEM_PROMPT
from tests.e2e.conftest import login
from tests.support.redis_server import RedisServer
from tests.support.run_readers import (
    SlowSocketReader,
    SseReader,
    ids,
    settled_rss_mb,
    tokens,
    wire,
)
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("resumable_runs")]

PACED = {"OFFLINE_TOKENS_PER_SECOND": "40", "OFFLINE_RESPONSE_TOKENS": "100"}
# 10,000 tokens at 5,000/s: 2 s, and more events than a run's in-process feed holds (4,096).
# The answer repeats the question's words: 2,500-character words make it megabytes, more
# than the kernel's socket buffers absorb (about 4 MB), so slow readers push back on the
# server itself and fall behind its feed.
FIREHOSE = {
    "OFFLINE_TOKENS_PER_SECOND": "5000",
    "OFFLINE_RESPONSE_TOKENS": "10000",
    "MAX_INPUT_CHARS": "30000",
    # RSS should show what the server holds, not what glibc keeps of memory already freed
    # (megabytes of 2,500-character strings churn through it): blocks from 64 KB up are
    # mapped and unmapped, free memory is trimmed past 1 MB, and two arenas serve all threads.
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MALLOC_TRIM_THRESHOLD_": "1048576",
    "MALLOC_ARENA_MAX": "2",
    # Nor the answers the cache keeps in memory for a few seconds (megabytes each).
    "CACHE_LOCAL_SECONDS": "0",
}
SHORT_LOG = {
    "TASK_EVENTS_MAX": "100",
    "OFFLINE_TOKENS_PER_SECOND": "0",
    "OFFLINE_RESPONSE_TOKENS": "400",
}
STREAM = "/v1/agents/chat/stream"
INVOKE = "/v1/agents/chat/invoke"
SHORT = {"max_tokens": 4}  # a quick answer on the paced processes
FINISHED = frozenset({"completed", "failed", "cancelled"})


@dataclass
class Api:
    server: ServerProcess
    auth: dict[str, str]

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(self.server.url + path, headers=self.auth, timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(self.server.url + path, json=body, headers=self.auth, timeout=30)

    def invoke(self, **body: Any) -> dict[str, Any]:
        response = self.post(INVOKE, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def stream(self, **body: Any) -> SseReader:
        return SseReader(self.server.url, STREAM, headers=self.auth, body=body)

    def follow(self, run_id: str, last_event_id: str | None = None) -> SseReader:
        path = f"/v1/runs/{run_id}/events"
        return SseReader(self.server.url, path, headers=self.auth, last_event_id=last_event_id)

    def ended(self, run_id: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.get(f"/v1/runs/{run_id}"))["status"] not in FINISHED:
            assert time.monotonic() < deadline, f"the run never ended: {run}"
            time.sleep(0.05)
        return run

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid


@dataclass
class Cluster:
    a: Api
    b: Api
    firehose: Api
    short_log: Api


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with ExitStack() as stack:
        redis = RedisServer()
        stack.callback(redis.close)
        redis.start()
        prefix = f"e2e-resume-{uuid.uuid4().hex[:8]}"
        base = {"REDIS_URL": redis.url, "RATE_LIMIT_ENABLED": "false"}
        paced = {**base, **PACED, "REDIS_KEY_PREFIX": f"{prefix}-ab:"}
        servers = [
            ServerProcess(env=paced),
            ServerProcess(env=paced),
            ServerProcess(env={**base, **FIREHOSE, "REDIS_KEY_PREFIX": f"{prefix}-fire:"}),
            ServerProcess(env={**base, **SHORT_LOG, "REDIS_KEY_PREFIX": f"{prefix}-short:"}),
        ]
        pool = stack.enter_context(ThreadPoolExecutor(len(servers)))
        stack.callback(lambda: list(pool.map(lambda s: s.__exit__(None, None, None), servers)))
        list(pool.map(lambda server: server.start(timeout=40), servers))  # side by side
        apis = [Api(s, {"Authorization": f"Bearer {login(s.url)}"}) for s in servers]
        yield Cluster(*apis)


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"  # no LLM cache hit: every answer is paced


def _bulky(text: str) -> str:
    """An input whose answer (see FIREHOSE) has a third of its tokens 2,500 characters long."""
    return " ".join([*(letter * 2500 for letter in "abcdefghijk"), _unique(text)])


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _words(*texts: str) -> int:
    return sum(len(text.split()) for text in texts)


def _assert_whole(frames: list[Frame]) -> None:
    """Strictly increasing ids 1..N, nothing missing or repeated, one end at the end."""
    assert ids(frames) == list(range(1, len(frames) + 1)), ids(frames)
    assert frames[0].event == "run_started"
    assert [f.event in {"run_completed", "error"} for f in frames].count(True) == 1
    assert frames[-1].event in {"run_completed", "error"}


# -- resuming, late readers, retention -------------------------------------------------------


@pytest.mark.parametrize("resume_on", ["b", "a"], ids=["other_process", "same_process"])
def test_a_run_that_continues_is_resumed_exactly_after_its_client_drops(
    cluster: Cluster, resume_on: str
) -> None:
    a, resumer = cluster.a, getattr(cluster, resume_on)
    first = a.stream(input=_unique("Tell me a long story"), on_disconnect="continue")
    run_id = first.run_id
    seen = first.take(5)
    first.drop()
    assert resumer.get(f"/v1/runs/{run_id}")["status"] == "running"  # the drop did not stop it

    frames = seen + resumer.follow(run_id, last_event_id=seen[-1].id).rest()
    _assert_whole(frames)
    assert frames[-1].event == "run_completed"
    assert [f.event for f in frames].count("token") == 100
    for api in (cluster.a, cluster.b):  # the whole log, from the start, on either process
        assert wire(api.follow(run_id).rest()) == wire(frames)
    run = resumer.get(f"/v1/runs/{run_id}")
    assert run["status"] == "completed"
    assert run["output"] == tokens(frames) == frames[-1].json["output"]


def test_dropping_a_stream_cancels_its_run_by_default(cluster: Cluster) -> None:
    stream = cluster.a.stream(input=_unique("Stop when I leave"))
    run_id = stream.run_id
    stream.take(3)
    stream.drop()
    run = cluster.b.ended(run_id)
    assert run["status"] == "cancelled" and run["error_code"] == "client_disconnected"
    assert run["output"] is None
    frames = cluster.b.follow(run_id).rest()
    _assert_whole(frames)
    assert frames[-1].event == "error" and frames[-1].json["code"] == "client_disconnected"
    assert [f.event for f in frames].count("token") < 100  # stopped, not run to its end


def test_a_late_reader_on_another_process_sees_what_the_first_reader_sees(
    cluster: Cluster,
) -> None:
    starter = cluster.a.stream(input=_unique("Two readers please"))
    run_id = starter.run_id
    early = starter.take(10)
    late = cluster.b.follow(run_id)  # no Last-Event-ID: from the start
    history = late.take(10)
    assert cluster.b.get(f"/v1/runs/{run_id}")["status"] == "running"  # it joined a live run
    with ThreadPoolExecutor(1) as pool:
        first_rest = pool.submit(starter.rest)
        late_frames = history + late.rest()
        first_frames = early + first_rest.result(timeout=20)
    _assert_whole(first_frames)
    assert first_frames[-1].event == "run_completed"
    assert wire(late_frames) == wire(first_frames)


def test_a_reader_older_than_the_retained_log_is_told_what_it_missed(cluster: Cluster) -> None:
    api = cluster.short_log
    answer = api.invoke(input=_unique("A long answer"), store=False)  # 400 tokens, ~100 kept
    frames = api.follow(answer["run_id"], last_event_id="0").rest()
    missed, kept = frames[0], frames[1:]
    assert missed.event == "events_missed" and missed.id is None
    gap = missed.json
    assert gap["from_seq"] == 1 and gap["to_seq"] > 0
    assert gap["run"]["id"] == answer["run_id"] and gap["run"]["status"] == "completed"
    expected = list(range(gap["to_seq"] + 1, gap["to_seq"] + 1 + len(kept)))
    assert ids(kept) == expected, "a hole after the notice, and no events_missed for it"
    assert kept[-1].event == "run_completed"
    assert kept[-1].json["output"] == answer["output"]
    # Resuming inside what is kept: exactly the later frames, no notice.
    later = api.follow(answer["run_id"], last_event_id=kept[9].id).rest()
    assert wire(later) == wire(kept[10:])


# -- sessions ----------------------------------------------------------------------------------


def test_a_session_starts_itself_and_store_false_keeps_none(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    first_input, second_input = _unique("Remember seven"), _unique("What was it?")
    first = a.invoke(input=first_input, params=SHORT)
    session_id = first["session_id"]
    assert isinstance(session_id, str) and len(session_id) == 32
    started = a.follow(first["run_id"]).rest()[0]
    assert started.event == "run_started" and started.json["session_id"] == session_id

    second = b.invoke(input=second_input, session_id=session_id, params=SHORT)
    assert second["session_id"] == session_id
    history = a.get(f"/v1/sessions/{session_id}/messages")
    assert history["total"] == 4
    assert [(m["role"], m["content"]) for m in history["items"]] == [
        ("user", first_input),
        ("assistant", first["output"]),
        ("user", second_input),
        ("assistant", second["output"]),
    ]
    # The second run saw the first exchange (the offline model counts prompt words).
    seen = _words(SYSTEM_PROMPT, first_input, first["output"], second_input)
    assert second["usage"]["prompt_tokens"] == seen

    sessions_before = b.get("/v1/sessions")["total"]
    stateless = b.invoke(input=_unique("Forget me"), params=SHORT, store=False)
    assert stateless["session_id"] is None
    assert a.get("/v1/sessions")["total"] == sessions_before
    run = a.get(f"/v1/runs/{stateless['run_id']}")
    assert run["status"] == "completed" and run["session_id"] is None


# -- a message sent to a busy session, from the other process ----------------------------------


@dataclass
class Contest:
    session_id: str
    holder: SseReader  # the run holding the session (on A), read so far: ``head``
    head: list[Frame]
    first_input: str
    second_input: str
    sent_at: datetime
    second: httpx.Response  # the invoke sent to B while the holder ran


def _contest(cluster: Cluster, if_busy: str) -> Contest:
    a, b = cluster.a, cluster.b
    created = a.post("/v1/sessions", {"agent": "chat"})
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    first_input, second_input = _unique("First"), _unique("Second")
    holder = a.stream(input=first_input, session_id=session_id)
    head = holder.take(6)  # run_started and 5 tokens: it holds the session
    body = {"input": second_input, "session_id": session_id, "if_busy": if_busy, "params": SHORT}
    sent_at = datetime.now(UTC)
    second = b.post(INVOKE, body)  # the holder streams on, unread, meanwhile
    return Contest(session_id, holder, head, first_input, second_input, sent_at, second)


def _history(api: Api, session_id: str) -> list[tuple[str, str]]:
    items = api.get(f"/v1/sessions/{session_id}/messages")["items"]
    return [(m["role"], m["content"]) for m in items]


def test_busy_reject_answers_409_and_the_holder_goes_on(cluster: Cluster) -> None:
    contest = _contest(cluster, "reject")
    assert contest.second.status_code == 409, contest.second.text
    assert contest.second.json()["code"] == "session_busy"
    run_id = contest.holder.run_id
    assert cluster.b.get(f"/v1/runs/{run_id}")["status"] == "running"
    assert cluster.b.post(f"/v1/runs/{run_id}/cancel").status_code == 202  # no need to wait
    frames = contest.head + contest.holder.rest()
    _assert_whole(frames)
    assert frames[-1].json["code"] == "cancelled"


def test_busy_enqueue_runs_after_the_holder_with_its_history(cluster: Cluster) -> None:
    contest = _contest(cluster, "enqueue")
    assert contest.second.status_code == 200, contest.second.text
    second = contest.second.json()
    frames = contest.head + contest.holder.rest()
    _assert_whole(frames)
    assert frames[-1].event == "run_completed"
    first_run = cluster.a.get(f"/v1/runs/{contest.holder.run_id}")
    assert first_run["status"] == "completed"
    started = cluster.a.follow(second["run_id"]).rest()[0]
    assert started.event == "run_started"
    # Sent while the first ran; started only once the first had ended.
    assert contest.sent_at < _time(first_run["finished_at"]) <= _time(started.json["ts"])
    assert _history(cluster.b, contest.session_id) == [
        ("user", contest.first_input),
        ("assistant", first_run["output"]),
        ("user", contest.second_input),
        ("assistant", second["output"]),
    ]
    seen = _words(SYSTEM_PROMPT, contest.first_input, first_run["output"], contest.second_input)
    assert second["usage"]["prompt_tokens"] == seen


@pytest.mark.parametrize(
    ("policy", "code"), [("interrupt", "interrupted"), ("rollback", "rolled_back")]
)
def test_busy_interrupt_and_rollback_stop_the_holder(
    cluster: Cluster, policy: str, code: str
) -> None:
    contest = _contest(cluster, policy)
    assert contest.second.status_code == 200, contest.second.text
    second = contest.second.json()
    frames = contest.head + contest.holder.rest()
    _assert_whole(frames)
    assert frames[-1].event == "error" and frames[-1].json["code"] == code
    first_run = cluster.b.get(f"/v1/runs/{contest.holder.run_id}")
    assert first_run["status"] == "cancelled" and first_run["error_code"] == code
    partial = tokens(frames)
    assert partial and [f.event for f in frames].count("token") < 100
    kept = [("user", contest.first_input), ("assistant", partial)]
    if policy == "rollback":
        kept = []  # the first exchange is dropped
    assert _history(cluster.a, contest.session_id) == [
        *kept,
        ("user", contest.second_input),
        ("assistant", second["output"]),
    ]
    seen = _words(SYSTEM_PROMPT, *(text for _, text in kept), contest.second_input)
    assert second["usage"]["prompt_tokens"] == seen


# -- back-pressure -----------------------------------------------------------------------------


def test_slow_readers_neither_grow_memory_nor_slow_the_run(cluster: Cluster) -> None:
    """The same megabytes-long run read at full speed, then by three readers that take one
    event a second: the run takes as long, and the server holds no more memory."""
    api = cluster.firehose
    # A first run settles the heap (allocator arenas, caches); the second is the baseline.
    for attempt in ("warm", "fast"):
        baseline = api.stream(input=_bulky(f"read {attempt}"), store=False)
        assert baseline.rest()[-1].event == "run_completed"
    fast_rss = settled_rss_mb(api.pid)
    fast = api.get(f"/v1/runs/{baseline.run_id}")

    port, body = api.server.port, {"input": _bulky("read slowly"), "store": False}
    starter = SlowSocketReader(port, STREAM, headers=api.auth, body=body)
    run_id = starter.headers["x-run-id"]
    readers = [
        starter,
        *(SlowSocketReader(port, f"/v1/runs/{run_id}/events", headers=api.auth) for _ in "ab"),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=reader.crawl, args=(stop,)) for reader in readers]
    try:
        for thread in threads:
            thread.start()
        run = api.ended(run_id, timeout=20)
        # The readers are thousands of events (tens of megabytes) behind: a server that
        # buffered for them would hold it all now.
        slow_rss = settled_rss_mb(api.pid)
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        for reader in readers:
            assert reader.failure is None, reader.failure
        assert run["status"] == "completed"
        assert run["execution_time"] <= 1.5 * fast["execution_time"] + 0.5, (run, fast)
        # Held: the run's in-process feed (4,096 events of 2,500-character words), 15-20 MB
        # measured. Buffering what the three readers lag behind would add 75 MB or more.
        assert slow_rss - fast_rss < 45, (fast_rss, slow_rss)
        # The readers catch up afterwards: runs of tokens may be merged, no text is lost.
        for reader in readers:
            frames = reader.drain()
            assert frames[-1].event == "run_completed"
            assert ids(frames) == sorted(set(ids(frames)))
            assert tokens(frames) == run["output"]
            # They had fallen out of the run's in-process buffer (so the run never waited
            # for them): what they read from the log came with its tokens merged.
            assert len(frames) < ids(frames)[-1]
    finally:
        stop.set()
        for reader in readers:
            reader.close()

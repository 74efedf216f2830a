"""The Python client's own machinery: the SSE parser, reconnection and its backoff, retries
only where safe, signing in again, and errors carrying the problem+json fields. The server
side is a real loopback HTTP server answering from a script (tests/support/scripted_http.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from agent_service_client import ApiError, Backoff, Client, StreamError
from agent_service_client.auth import Credentials
from agent_service_client.events import EventsMissed, RunCompleted, TokenEvent
from agent_service_client.streams import Frame, SSEParser, _Follow

from tests.support.scripted_http import Answer, ScriptedServer

NO_WAIT = Backoff(initial=0.001, maximum=0.001, max_attempts=3)
SSE = {"Content-Type": "text/event-stream"}


def _frames(text: str) -> list[Frame]:
    parser = SSEParser()
    frames = [parser.feed(line) for line in text.split("\n")]
    return [frame for frame in frames if frame is not None]


def _token(seq: int, text: str) -> bytes:
    data = json.dumps({"seq": seq, "ts": "2026-01-01T00:00:00Z", "type": "token", "text": text})
    return f"id: {seq}\nevent: token\ndata: {data}\n\n".encode()


def _completed(seq: int, output: str) -> bytes:
    data = json.dumps({"seq": seq, "type": "run_completed", "output": output})
    return f"id: {seq}\nevent: run_completed\ndata: {data}\n\n".encode()


def _problem(status: int, code: str, **extra: object) -> Answer:
    body = {"type": f"https://agent-service.dev/problems/{code}", "title": "T", "status": status}
    body |= {"detail": f"{code} happened", "code": code, "request_id": "req-1", **extra}
    headers = {"Content-Type": "application/problem+json", "Retry-After": "0"}
    return Answer(status, json.dumps(body).encode(), headers)


# -- SSE parsing -----------------------------------------------------------------------------


def test_the_parser_follows_the_event_stream_rules() -> None:
    frames = _frames(
        ": keep-alive\n\n"
        'id: 7\nevent: token\ndata: {"a":\ndata: 1}\n\n'
        "data:no space\n\n"
        "retry: 1000\nevent: shutdown\ndata: {}\n\n"
        "retry: soon\nid: 8\x00\ndata: x\n\n"
    )
    assert [(f.event, f.data, f.id, f.retry) for f in frames] == [
        ("token", '{"a":\n1}', "7", None),
        ("message", "no space", None, None),
        ("shutdown", "{}", None, 1000),
        ("message", "x", None, None),  # a bad retry and an id with NUL are ignored
    ]


def test_a_follow_resumes_after_the_last_id_and_reports_what_was_missed() -> None:
    state = _Follow(0, NO_WAIT)
    item = state.item(Frame("token", _token(3, "a").decode().split("data: ")[1].strip(), "3"))
    assert isinstance(item, TokenEvent) and state.after == 3
    missed = state.item(Frame("events_missed", '{"type":"events_missed","from_seq":4,"to_seq":9}'))
    assert isinstance(missed, EventsMissed) and state.after == 9
    assert state.item(Frame("something_new", "{}", "10")) is None  # a newer server's type
    assert not state.done


def test_backoff_grows_is_capped_jittered_and_takes_the_servers_hint() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, max_attempts=5)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        assert ceiling / 2 <= backoff.delay(attempt) <= ceiling
    assert backoff.delay(1, hint_ms=1000) == 1.0


def test_reconnection_stops_on_a_client_error_and_after_too_many_failures() -> None:
    state = _Follow(0, NO_WAIT)
    with pytest.raises(ApiError):
        state.failed(ApiError(status=404, code="run_not_found", detail="gone"))
    for _ in range(3):
        state.failed(httpx.ReadError("cut"))
    with pytest.raises(StreamError):
        state.failed(httpx.ReadError("cut"))


# -- against a scripted server ---------------------------------------------------------------


def _scripted(answers: dict[tuple[str, str], list[Answer]]) -> Callable[[str, str], Answer]:
    def route(method: str, path: str) -> Answer:
        queue = answers[(method, path.split("?")[0])]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return route


def test_a_stream_cut_mid_way_is_resumed_with_last_event_id() -> None:
    first = Answer(200, _token(1, "a") + _token(2, "b"), SSE)  # then the connection closes
    rest = Answer(200, _token(3, "c") + _completed(4, "abc"), SSE)
    script = {("GET", "/v1/runs/r1/events"): [first, rest]}
    with ScriptedServer(_scripted(script)) as server, Client(server.url, backoff=NO_WAIT) as c:
        items = list(c.follow_run("r1"))
    assert [item.seq for item in items if not isinstance(item, EventsMissed)] == [1, 2, 3, 4]
    assert isinstance(items[-1], RunCompleted)
    assert "Last-Event-ID" not in server.seen[0].headers
    assert server.seen[1].headers["Last-Event-ID"] == "2"


def test_gets_and_idempotent_posts_are_retried_other_posts_are_not() -> None:
    busy = _problem(503, "dependency_unavailable")
    ok = Answer(200, b'{"task_id": "t1", "status": "queued"}')
    script = {("GET", "/v1/tasks/t1"): [busy, ok], ("POST", "/v1/tasks"): [busy, ok]}
    with ScriptedServer(_scripted(script)) as server, Client(server.url, backoff=NO_WAIT) as c:
        assert c.get_task("t1")["task_id"] == "t1"
        with pytest.raises(ApiError) as refused:
            c.submit_task("chat", "hi")  # not idempotent: a retry could start a second task
        assert c.submit_task("chat", "hi", idempotency_key="k")["task_id"] == "t1"
    assert [(s.method, s.path) for s in server.seen] == [
        ("GET", "/v1/tasks/t1"),
        ("GET", "/v1/tasks/t1"),
        ("POST", "/v1/tasks"),
        ("POST", "/v1/tasks"),
    ]
    error = refused.value
    assert (error.status, error.code, error.detail) == (
        503,
        "dependency_unavailable",
        "dependency_unavailable happened",
    )
    assert error.request_id == "req-1" and error.retry_after == 0
    assert error.type == "https://agent-service.dev/problems/dependency_unavailable"


def test_a_password_client_signs_in_before_expiry_and_after_a_refused_token() -> None:
    logins = iter(range(100))
    me_requests = iter(range(1, 100))

    def route(method: str, path: str) -> Answer:
        if path == "/v1/auth/token":
            number = next(logins)
            # The first token expires within the refresh margin: the next call signs in again.
            expires_in = 10 if number == 0 else 3600
            token = {"access_token": f"t{number}", "expires_in": expires_in}
            return Answer(200, json.dumps(token).encode())
        if next(me_requests) == 3:
            return _problem(401, "token_revoked")  # as after `users revoke-tokens`
        return Answer(200, b'{"id": "user:admin"}')

    with ScriptedServer(route) as server:
        with Client(server.url, username="admin", password="pw", backoff=NO_WAIT) as client:
            for _ in range(3):
                assert client.me() == {"id": "user:admin"}
    calls = [(s.method, s.path, s.headers.get("Authorization")) for s in server.seen]
    assert calls == [
        ("POST", "/v1/auth/token", None),
        ("GET", "/v1/auth/me", "Bearer t0"),
        ("POST", "/v1/auth/token", None),  # t0 was about to expire
        ("GET", "/v1/auth/me", "Bearer t1"),
        ("GET", "/v1/auth/me", "Bearer t1"),  # refused: 401
        ("POST", "/v1/auth/token", None),
        ("GET", "/v1/auth/me", "Bearer t2"),
    ]


def test_an_error_that_is_not_problem_json_still_raises_api_error() -> None:
    page = Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})
    with ScriptedServer(lambda method, path: page) as server:
        with Client(server.url, api_key="k", max_retries=0) as client, pytest.raises(ApiError) as e:
            client.list_agents()
    assert (e.value.status, e.value.code, e.value.detail) == (
        502,
        "http_502",
        "<html>Bad Gateway</html>",
    )
    assert server.seen[0].headers["X-API-Key"] == "k"


def test_credentials_are_one_kind() -> None:
    with pytest.raises(ValueError, match="one of"):
        Credentials(api_key="k", token="t")
    with pytest.raises(ValueError, match="together"):
        Credentials(username="admin")
    assert "pw" not in repr(Credentials(username="admin", password="pw"))


def test_an_answer_that_arrives_before_the_task_record_waits_is_tried_again() -> None:
    early = _problem(409, "no_input_pending")
    taken = Answer(200, b'{"task_id": "t1", "status": "running"}')
    script = {("POST", "/v1/tasks/t1/input"): [early, early, taken]}
    with ScriptedServer(_scripted(script)) as server, Client(server.url, backoff=NO_WAIT) as c:
        assert c.answer_task("t1", "q1", "high")["status"] == "running"
        with pytest.raises(ApiError) as other:  # another conflict is the caller's to see
            script[("POST", "/v1/tasks/t1/input")] = [_problem(409, "task_finished")]
            c.answer_task("t1", "q1", "high")
    assert other.value.code == "task_finished"
    assert len(server.seen) == 4

"""The Python client (clients/python) against a real server over real sockets: auth by
password, token and API key; invoke, stream, sessions, tasks and runs; reconnection after a
cut connection; errors as exceptions with the problem+json fields."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from agent_service_client import ApiError, AsyncClient, Client
from agent_service_client.events import (
    EventsMissed,
    InputRequired,
    RunCompleted,
    RunStarted,
    StreamItem,
    TokenEvent,
)

from tests.support.cutting_proxy import CuttingProxy
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("python-client")]

PASSWORD = "admin-test-password"
# Instant tokens; few events kept per run, so a late follower is told what it missed.
FAST = {
    "RATE_LIMIT_ENABLED": "false",  # the tests sign in more than 10 times a minute
    "OFFLINE_TOKENS_PER_SECOND": "0",
    "OFFLINE_RESPONSE_TOKENS": "400",
    "TASK_EVENTS_MAX": "100",
}
SLOW = {"OFFLINE_TOKENS_PER_SECOND": "100", "OFFLINE_RESPONSE_TOKENS": "120"}


@pytest.fixture(scope="module")
def fast(redis_server: RedisServer) -> Iterator[ServerProcess]:
    env = {**FAST, "REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": "e2e-pyclient:"}
    with ServerProcess(env=env) as server:
        yield server


@pytest.fixture(scope="module")
def slow() -> Iterator[ServerProcess]:
    with ServerProcess(env=SLOW) as server:
        yield server


def _admin(url: str) -> Client:
    return Client(url, username="admin", password=PASSWORD)


def _seqs(items: list[StreamItem]) -> list[int]:
    return [item.seq for item in items if not isinstance(item, EventsMissed)]


def test_invoke_stream_and_a_session_with_password_login(fast: ServerProcess) -> None:
    with _admin(fast.url) as client:
        answer = client.invoke("chat", "hello", params={"max_tokens": 5})
        assert len(answer.output.split()) == 5
        assert client.get_run(answer.run_id)["output"] == answer.output

        session_id = client.create_session("chat")["id"]
        with client.stream("chat", "first", session_id=session_id, params={"max_tokens": 4}) as run:
            events = list(run)
        assert isinstance(events[0], RunStarted) and events[0].run_id == run.run_id
        assert run.session_id == session_id
        assert isinstance(events[-1], RunCompleted)
        tokens = "".join(e.text for e in events if isinstance(e, TokenEvent))
        assert tokens == events[-1].output
        assert _seqs(events) == list(range(1, len(events) + 1))

        client.invoke("chat", "second", session_id=session_id, params={"max_tokens": 4})
        messages = client.list_session_messages(session_id)["items"]
        assert [m["content"] for m in messages if m["role"] == "user"] == ["first", "second"]


def test_api_key_and_token_auth_and_problem_fields(fast: ServerProcess) -> None:
    with _admin(fast.url) as admin:
        key = admin.create_api_key("client-test", ["agents:run"])
        token = admin.login()["access_token"]
    with Client(fast.url, api_key=key["key"]) as by_key:
        assert by_key.me()["id"] == f"key:{key['id']}"
        with pytest.raises(ApiError) as refused:
            by_key.list_tasks()
    problem = refused.value
    assert (problem.status, problem.code, problem.title) == (403, "insufficient_scope", "Forbidden")
    assert problem.type == "https://agent-service.dev/problems/insufficient_scope"
    assert problem.request_id and problem.detail
    with Client(fast.url, token=token) as by_token:
        assert by_token.me()["id"] == "user:admin"
        with pytest.raises(ApiError) as invalid:
            by_token.invoke("chat", "")
    assert invalid.value.status == 422 and invalid.value.code == "validation_error"
    assert invalid.value.errors[0]["loc"] == ["body", "input"]
    with Client(fast.url, api_key="not-a-key") as stranger, pytest.raises(ApiError) as bad:
        stranger.list_agents()
    assert bad.value.status == 401


def test_a_task_is_submitted_once_followed_answered_and_waited_for(fast: ServerProcess) -> None:
    with _admin(fast.url) as client:
        first = client.submit_task("approval", "Deploy", idempotency_key="deploy-1")
        again = client.submit_task("approval", "Deploy", idempotency_key="deploy-1")
        assert again["task_id"] == first["task_id"]
        task_id = first["task_id"]
        answers: Iterator[str | bool] = iter(["high", True])
        seen: list[StreamItem] = []
        for item in client.follow_task(task_id):
            seen.append(item)
            if isinstance(item, InputRequired):
                client.answer_task(task_id, item.request_id, next(answers))
        assert isinstance(seen[-1], RunCompleted)
        result = client.wait_task(task_id, timeout=10)
    assert result.success and result.output is not None
    assert result.output.startswith("Approved at high priority.")


def test_a_late_follower_is_told_what_it_missed(fast: ServerProcess) -> None:
    with _admin(fast.url) as client:
        answer = client.invoke("chat", "long", params={"max_tokens": 400}, store=False)
        items = list(client.follow_run(answer.run_id))  # ~100 of its 400 events are kept
    missed = items[0]
    assert isinstance(missed, EventsMissed)
    assert missed.from_seq == 1 and missed.run is not None
    assert missed.run["status"] == "completed"
    assert _seqs(items)[0] == missed.to_seq + 1
    assert isinstance(items[-1], RunCompleted) and items[-1].output == answer.output


def test_a_cut_stream_resumes_from_its_last_event(slow: ServerProcess) -> None:
    proxy = CuttingProxy(
        int(slow.url.rsplit(":", 1)[1]),
        cut=lambda head: head.startswith(b"POST /v1/agents/chat/stream"),
        after_bytes=2500,  # a few dozen token frames in
    )
    try:
        with _admin(proxy.url) as client:
            with client.stream("chat", "a story", on_disconnect="continue") as run:
                events = list(run)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    resumed = [head for head in proxy.heads if head.startswith(b"GET /v1/runs/")]
    assert len(resumed) == 1 and b"last-event-id: " in resumed[0].lower()
    assert _seqs(events) == list(range(1, len(events) + 1))  # nothing lost, nothing twice
    final = events[-1]
    assert isinstance(final, RunCompleted)
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == final.output
    assert len(final.output.split()) == 120


def test_the_async_client_streams_answers_and_cancels(fast: ServerProcess) -> None:
    async def scenario() -> tuple[list[str], str, str]:
        async with AsyncClient(fast.url, username="admin", password=PASSWORD) as client:
            kinds: list[str] = []
            async with client.stream("approval", "Archive the logs") as run:
                async for item in run:
                    kinds.append(item.type)
                    if isinstance(item, InputRequired):
                        await run.answer(item.request_id, "low" if item.choices else False)
            assert run.run_id is not None
            record = await client.get_run(run.run_id)
            task_id = (await client.submit_task("approval", "Wait for me"))["task_id"]
            async for item in client.follow_task(task_id):
                if isinstance(item, InputRequired):
                    await client.cancel_task(task_id)
            cancelled = await client.wait_task(task_id, timeout=10)
            return kinds, record["output"], cancelled.status

    kinds, output, status = asyncio.run(scenario())
    assert kinds.count("input_required") == 2 and kinds[-1] == "run_completed"
    assert output == "Not approved. No action was taken."
    assert status == "cancelled"

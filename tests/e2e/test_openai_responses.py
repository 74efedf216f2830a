"""The Responses API driven by the official openai package (sync and async clients) against a
real server process on a real Redis: create, stream, background + retrieve + cancel, a
stream resumed with starting_after, previous_response_id through a human-input run, delete,
and the SDK's error classes for 401, 404 and 429."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.e2e.conftest import login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("openai_responses")]

# A chat answer streams 60 tokens in about 2 s: long enough to cancel or interrupt one.
ENV = {
    "OFFLINE_TOKENS_PER_SECOND": "30",
    "OFFLINE_RESPONSE_TOKENS": "60",
    "RATE_LIMIT_ROUTES": json.dumps({"DELETE /v1/responses/{response_id}": "2/minute"}),
}


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[ServerProcess]:
    redis_server.start()
    env = {**ENV, "REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"e2e-{uuid.uuid4().hex}:"}
    with ServerProcess(env=env) as process:
        yield process


@pytest.fixture(scope="module")
def slow_server(redis_server: RedisServer) -> Iterator[ServerProcess]:
    """Answers take 30 s: a cancel always lands while the response is queued or running,
    however loaded the machine (on the 2 s server it once arrived after the end)."""
    redis_server.start()
    env = {
        **ENV,
        "OFFLINE_TOKENS_PER_SECOND": "2",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"e2e-{uuid.uuid4().hex}:",
    }
    with ServerProcess(env=env) as process:
        yield process


def make_api_key(server: ServerProcess) -> str:
    """An API key with agents:run and tasks:write, as an OpenAI client would hold one."""
    made = httpx.post(
        f"{server.url}/v1/auth/api-keys",
        headers={"Authorization": f"Bearer {login(server.url)}"},
        json={"name": "openai-sdk", "scopes": ["agents:run", "tasks:write"]},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


@pytest.fixture(scope="module")
def api_key(server: ServerProcess) -> str:
    return make_api_key(server)


@pytest.fixture
def client(server: ServerProcess, api_key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def aclient(server: ServerProcess, api_key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0)


def until_status(
    client: OpenAI, response_id: str, *statuses: str
) -> openai.types.responses.Response:
    deadline = time.monotonic() + 20
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        assert time.monotonic() < deadline, response.status
        time.sleep(0.05)


def test_create_stream_and_retrieve_with_the_sync_client(client: OpenAI) -> None:
    response = client.responses.create(model="chat", input="Hello from the SDK")
    assert response.status == "completed" and response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    assert client.responses.retrieve(response.id).output_text == response.output_text
    with client.responses.stream(model="chat", input="Stream this") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) > 10 and "".join(deltas) == final.output_text
    assert client.responses.retrieve(final.id).status == "completed"


async def test_background_retrieve_and_cancel_with_the_async_client(
    aclient: AsyncOpenAI, slow_server: ServerProcess
) -> None:
    slow = AsyncOpenAI(
        base_url=f"{slow_server.url}/v1", api_key=make_api_key(slow_server), max_retries=0
    )
    async with slow:
        queued = await slow.responses.create(model="chat", input="Background", background=True)
        assert queued.status == "queued" and queued.background
        started = time.monotonic()
        cancelled = await slow.responses.cancel(queued.id)
        assert cancelled.status == "cancelled" and time.monotonic() - started < 5
        assert (await slow.responses.retrieve(queued.id)).status == "cancelled"
        # Once its worker is streaming the answer, a cancel stops it within seconds too.
        running = await slow.responses.create(model="chat", input="Run then stop", background=True)
        deadline = time.monotonic() + 20
        while (await slow.responses.retrieve(running.id)).status == "queued":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        started = time.monotonic()
        stopped = await slow.responses.cancel(running.id)
        assert stopped.status == "cancelled" and time.monotonic() - started < 5
    async with aclient:
        done = await aclient.responses.create(model="chat", input="Finish", background=True)
        events = await aclient.responses.retrieve(done.id, stream=True)
        kinds = [event.type async for event in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_a_stream_resumes_after_the_last_event_it_had(client: OpenAI) -> None:
    response = client.responses.create(model="chat", input="Resume me", background=True)
    first = client.responses.retrieve(response.id, stream=True)
    seen = []
    for event in first:
        seen.append(event)
        if event.type == "response.output_text.delta" and len(seen) >= 8:
            break
    first.close()  # the connection drops mid-answer; the background response goes on
    last = seen[-1].sequence_number
    rest = list(client.responses.retrieve(response.id, stream=True, starting_after=last))
    numbers = [event.sequence_number for event in [*seen, *rest]]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed"
    text = "".join(e.delta for e in [*seen, *rest] if e.type == "response.output_text.delta")
    assert text == rest[-1].response.output_text
    # The SDK's own helper resumes the same way (it replays and skips what it had).
    with client.responses.stream(response_id=response.id, starting_after=last) as again:
        assert [e.sequence_number for e in again] == [e.sequence_number for e in rest]
        assert again.get_final_response().output_text == text


async def test_human_input_through_previous_response_id(aclient: AsyncOpenAI) -> None:
    async with aclient:
        asked = await aclient.responses.create(model="approval", input="Rotate the keys")
        assert asked.status == "incomplete" and asked.incomplete_details is not None
        assert asked.incomplete_details.reason == "input_required"  # type: ignore[comparison-overlap]
        question = asked.output[-1]
        assert question.type == "mcp_approval_request"
        assert json.loads(question.arguments)["choices"] == ["low", "normal", "high"]
        chosen = await aclient.responses.create(
            model="approval", input="normal", previous_response_id=asked.id
        )
        confirm = chosen.output[-1]
        assert chosen.previous_response_id == asked.id and confirm.type == "mcp_approval_request"
        done = await aclient.responses.create(
            model="approval",
            previous_response_id=chosen.id,
            input=[
                {
                    "type": "mcp_approval_response",
                    "approval_request_id": confirm.id,
                    "approve": False,
                }
            ],
        )
        assert (
            done.status == "completed" and done.output_text == "Not approved. No action was taken."
        )
        later = await aclient.responses.create(
            model="approval", input="Now archive the logs", previous_response_id=done.id
        )
        assert later.status == "incomplete"  # a new run in the same conversation asks again
        await aclient.responses.cancel(later.id)


def test_delete_and_the_sdk_error_classes(client: OpenAI, server: ServerProcess) -> None:
    response = client.responses.create(model="chat", input="Delete me")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as missing_model:
        client.responses.create(model="gpt-unknown", input="x")
    assert missing_model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="chat", input="x", temperature=9)
    assert bad.value.param == "temperature"
    with OpenAI(base_url=f"{server.url}/v1", api_key="ask_wrong", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            stranger.responses.create(model="chat", input="x")
    with pytest.raises(openai.NotFoundError):  # the route's second delete this minute
        client.responses.delete(response.id)
    with pytest.raises(openai.RateLimitError) as limited:  # its third
        client.responses.delete(response.id)
    assert limited.value.code == "rate_limited"

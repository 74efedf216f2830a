"""OpenAI's own Python client (sync OpenAI and async AsyncOpenAI) against a real server
process: models, completions, streams with usage, the agent's tool steps, sessions through
extra_body, human input, auth with our API keys and JWTs, and the SDK's error classes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.e2e.conftest import login
from tests.support.openai_agents import AGENTS
from tests.support.server_process import ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("openai-chat")]

ENV = {
    "AGENTS": ",".join(AGENTS),
    "OFFLINE_LATENCY_MS": "0",
    "OFFLINE_TOKENS_PER_SECOND": "400",
    "RATE_LIMIT_ROUTES": json.dumps({"POST /v1/chat/completions": "1000/minute"}),
}


class Served:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.token = login(server.url)
        self.auth = {"Authorization": f"Bearer {self.token}"}
        created = httpx.post(
            f"{server.url}/v1/auth/api-keys",
            headers=self.auth,
            json={"name": "openai-client", "scopes": ["agents:run", "sessions:write"]},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        self.key = str(created.json()["key"])
        self.key_auth = {"Authorization": f"Bearer {self.key}"}  # what the SDK sends

    def client(self, key: str | None = None) -> OpenAI:
        # No retries: an error must reach the test as the SDK raises it, once.
        return OpenAI(base_url=f"{self.server.url}/v1", api_key=key or self.key, max_retries=0)

    def async_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.server.url}/v1", api_key=self.key, max_retries=0)

    def run(self, run_id: str, headers: dict[str, str] | None = None) -> dict[str, object]:
        """The run's record, read as its owner (the API key, unless ``headers`` say)."""
        url = f"{self.server.url}/v1/runs/{run_id}"
        answer = httpx.get(url, headers=headers or self.key_auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with ServerProcess(env=ENV) as server:
        yield Served(server)


def test_models_list_and_retrieve_with_an_api_key(served: Served) -> None:
    client = served.client()
    ids = [model.id for model in client.models.list()]
    assert {"chat", "assistant", "approval", "recall"} <= set(ids)
    assert client.models.retrieve("assistant").id == "assistant"
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("gpt-4o")
    assert exc.value.code == "model_not_found" and exc.value.type == "invalid_request_error"


def test_a_completion_with_history_through_a_jwt(served: Served) -> None:
    client = served.client(key=served.token)  # our JWT works as the "API key" too
    completion = client.chat.completions.create(
        model="recall",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "I am Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "Who am I?"},
        ],
        temperature=0.2,
    )
    seen = json.loads(completion.choices[0].message.content or "")
    assert seen["input"] == "Who am I?"
    assert [m["content"] for m in seen["history"]] == ["Be brief.", "I am Ada.", "Hello Ada."]
    assert seen["params"] == {"temperature": 0.2}
    assert completion.choices[0].finish_reason == "stop"
    run_id = completion.id.removeprefix("chatcmpl-")
    record = served.run(run_id, served.auth)  # the admin's run: a JWT is the admin
    assert record["output"] == completion.choices[0].message.content
    assert completion.usage is not None  # recall calls no model: the run's usage is zero
    assert completion.usage.total_tokens == record["usage"]["total_tokens"] == 0  # type: ignore[index]


def test_a_stream_with_usage_matches_the_run(served: Served) -> None:
    client = served.client()
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    finish = None
    ids = set()
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        else:
            usage = chunk.usage
    assert len(ids) == 1 and finish == "stop" and usage is not None
    assert len([p for p in pieces if p]) > 5  # streamed token by token
    record = served.run(ids.pop().removeprefix("chatcmpl-"))
    assert record["output"] == "".join(pieces)
    assert usage.total_tokens == record["usage"]["total_tokens"]  # type: ignore[index]


def test_tool_calls_are_the_agents_steps(served: Served) -> None:
    client = served.client()
    completion = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "What is 12*(3+4)?"}]
    )
    assert completion.choices[0].message.tool_calls is None
    steps = completion.agent_run["steps"]  # type: ignore[attr-defined]
    assert [s["type"] for s in steps] == ["tool_call", "tool_result"]
    assert steps[1]["output"] == "84"
    stream = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "What is 12*(3+4)?"}],
        stream=True,
    )
    kinds = []
    for chunk in stream:
        assert not chunk.choices[0].delta.tool_calls
        step = (chunk.model_extra or {}).get("agent_step")
        if step is not None:
            kinds.append(step["type"])
    assert kinds == ["tool_call", "tool_result"]


def test_extra_body_session_id_keeps_the_conversation(served: Served) -> None:
    session = httpx.post(
        f"{served.server.url}/v1/sessions",
        headers={"X-API-Key": served.key},
        json={"agent": "recall"},
        timeout=10,
    ).json()
    client = served.client()
    for text in ("one", "two"):
        completion = client.chat.completions.create(
            model="recall",
            messages=[{"role": "user", "content": text}],
            extra_body={"session_id": session["id"]},
        )
    seen = json.loads(completion.choices[0].message.content or "")
    assert [m["role"] for m in seen["history"]] == ["user", "assistant"]
    assert seen["history"][0]["content"] == "one"


def test_human_input_is_an_error_pointing_at_the_waiting_run(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.ConflictError) as refused:
        client.chat.completions.create(
            model="approval", messages=[{"role": "user", "content": "Email the team."}]
        )
    assert refused.value.code == "input_required"
    body = refused.value.body
    assert isinstance(body, dict)
    stream = client.chat.completions.create(
        model="approval", messages=[{"role": "user", "content": "Email the team."}], stream=True
    )
    with pytest.raises(openai.APIError) as in_stream:
        for _ in stream:
            pass
    error = in_stream.value.body
    assert isinstance(error, dict) and error["code"] == "input_required"
    run_id, asked = error["run_id"], error["input_request"]
    url = f"{served.server.url}/v1/runs/{run_id}"
    answer = httpx.post(
        f"{url}/input",
        headers=served.key_auth,
        json={"request_id": asked["request_id"], "value": "low"},
        timeout=10,
    )
    assert answer.status_code == 202
    with httpx.stream("GET", f"{url}/events", headers=served.key_auth, timeout=30) as events:
        for line in events.iter_lines():
            if line.startswith("data: ") and '"input_required"' in line:
                confirm = json.loads(line[6:])
                if confirm["kind"] == "confirm":
                    httpx.post(
                        f"{url}/input",
                        headers=served.key_auth,
                        json={"request_id": confirm["request_id"], "value": False},
                        timeout=10,
                    )
            if line.startswith("event: run_completed"):
                break
    assert served.run(run_id)["output"] == "Not approved. No action was taken."
    # The first, non-streamed one waits too: cancel it rather than let it time out.
    cancel = httpx.post(
        f"{served.server.url}/v1/runs/{body['run_id']}/cancel", headers=served.key_auth, timeout=10
    )
    assert cancel.status_code == 202


def test_leaving_a_stream_cancels_its_run() -> None:
    with ServerProcess(env={**ENV, "OFFLINE_TOKENS_PER_SECOND": "5"}) as server:
        token = login(server.url)
        auth = {"Authorization": f"Bearer {token}"}
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "Write at length."}],
            "stream": True,
        }
        with httpx.stream(
            "POST", f"{server.url}/v1/chat/completions", headers=auth, json=body, timeout=30
        ) as response:
            run_id = response.headers["x-run-id"]
            lines = response.iter_lines()
            while "content" not in next(lines):  # the first token has arrived
                pass
        deadline = time.monotonic() + 5
        while True:
            record = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=auth, timeout=10).json()
            if record["status"] != "running":
                break
            assert time.monotonic() < deadline, "the run went on after its client left"
            time.sleep(0.05)
        assert record["status"] == "cancelled", record
        assert record["error_code"] == "client_disconnected"


def test_sdk_error_classes(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError) as bad_key:
        served.client(key="ask_00000000_" + "0" * 32).models.list()
    assert bad_key.value.code == "api_key_invalid"
    with pytest.raises(openai.AuthenticationError):
        served.client(key="not-a-key").chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
    client = served.client()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="chat", messages=[{"role": "assistant", "content": "hi"}]
        )
    assert bad.value.param == "messages.0.role"
    with pytest.raises(openai.BadRequestError) as no_tools:
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    assert no_tools.value.code == "unsupported_parameter"


def test_the_async_client_streams_and_completes(served: Served) -> None:
    async def main() -> tuple[str, str]:
        async with served.async_client() as client:
            completion = await client.chat.completions.create(
                model="recall", messages=[{"role": "user", "content": "async"}]
            )
            stream = await client.chat.completions.create(
                model="recall", messages=[{"role": "user", "content": "async"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return completion.choices[0].message.content or "", text

    whole, streamed = asyncio.run(main())
    assert whole == streamed and json.loads(whole)["input"] == "async"


def test_a_tiny_rate_limit_is_the_sdks_rate_limit_error() -> None:
    env = {**ENV, "RATE_LIMIT_ROUTES": json.dumps({"POST /v1/chat/completions": "2/minute"})}
    with ServerProcess(env=env) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key=login(server.url), max_retries=0)
        ask = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            client.chat.completions.create(**ask)  # type: ignore[call-overload]
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert limited.value.code == "rate_limited" and limited.value.type == "requests"
        assert limited.value.response.headers["retry-after"]

"""OpenAICompatProvider against a real HTTP server speaking the OpenAI streaming protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from app.llm.cache import CachedLLM
from app.llm.cache_store import MemoryCacheStore
from app.llm.factory import build_llm
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.protocol import LLMError
from app.llm.types import ChatMessage, LLMDelta, LLMFinal, LLMRequest, ToolSpec
from tests.conftest import SettingsFactory
from tests.support.fake_openai import (
    Disconnect,
    FakeOpenAI,
    Hang,
    Slow,
    Status,
    Text,
    ToolCalls,
)
from tests.support.ports import free_port

API_KEY = "sk-test-0123456789abcdef-SECRET"
REQUEST = LLMRequest(messages=[ChatMessage(role="user", content="Say hello")])
CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate arithmetic.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
)
ProviderFactory = Callable[..., OpenAICompatProvider]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def make_provider(fake_openai: FakeOpenAI) -> AsyncIterator[ProviderFactory]:
    providers: list[OpenAICompatProvider] = []

    def factory(**overrides: Any) -> OpenAICompatProvider:
        options: dict[str, Any] = {
            "base_url": fake_openai.url,
            "model": "fake-model",
            "api_key": API_KEY,
            "timeout": 5.0,
            "connect_timeout": 1.0,
            "max_retries": 2,
            "backoff_base": 0.01,  # keeps backoff out of the timings; Retry-After still rules
        }
        options.update(overrides)
        provider = OpenAICompatProvider(**options)
        providers.append(provider)
        return provider

    yield factory
    for provider in providers:
        await provider.aclose()


def assert_no_secret(error: BaseException) -> None:
    seen: BaseException | None = error
    while seen is not None:
        assert API_KEY not in str(seen) and API_KEY not in repr(seen)
        seen = seen.__cause__ or seen.__context__


async def test_complete_sends_openai_request_and_parses_usage(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    response = await make_provider().complete(REQUEST)

    assert response.content == "Hello from the fake."
    assert response.finish_reason == "stop"
    assert response.model == "fake-model"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 5)
    assert response.usage.total_tokens == 12
    sent = fake_openai.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert sent.body["model"] == "fake-model" and sent.body["temperature"] == 0.0


async def test_stream_yields_deltas_as_they_arrive(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(Text(chunks=["One", " two", " three", " four"], interval=0.1))
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    final = None
    async for item in make_provider().stream(REQUEST):
        if isinstance(item, LLMDelta):
            arrivals.append((time.monotonic() - started, item.text))
        else:
            final = item.response

    assert [text for _, text in arrivals] == ["One", " two", " three", " four"]
    assert final is not None and final.content == "One two three four"
    # Real streaming: the first piece arrives well before the last one was even sent.
    assert arrivals[-1][0] - arrivals[0][0] >= 0.25


async def test_tool_calls_are_assembled_from_split_chunks(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(
        ToolCalls(
            calls=[
                ("call_a", "calculator", ['{"expr', 'ession": "12*', '(3+4)"}']),
                ("call_b", "current_time", []),
            ]
        )
    )
    request = LLMRequest(messages=REQUEST.messages, tools=[CALCULATOR])
    items = [item async for item in make_provider().stream(request)]

    assert len(items) == 1 and isinstance(items[0], LLMFinal)
    response = items[0].response
    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_a", "calculator", {"expression": "12*(3+4)"}),
        ("call_b", "current_time", {}),
    ]
    assert response.usage.total_tokens == 20
    assert fake_openai.requests[0].body["tools"][0]["function"]["name"] == "calculator"


async def test_429_is_retried_after_retry_after(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(Status(429, headers={"Retry-After": "1"}), Text())
    started = time.monotonic()
    response = await make_provider().complete(REQUEST)
    elapsed = time.monotonic() - started

    assert response.content == "Hello from the fake."
    assert fake_openai.request_count == 2
    gap = fake_openai.requests[1].at - fake_openai.requests[0].at
    assert 0.9 <= gap < 2.0 and elapsed < 3.0


async def test_rate_limit_retries_exhausted(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(*[Status(429, headers={"Retry-After": "0"})] * 3, Text())
    with pytest.raises(LLMError) as caught:
        await make_provider(max_retries=2).complete(REQUEST)

    assert caught.value.code == "llm_rate_limited" and caught.value.retryable
    assert fake_openai.request_count == 3  # one try + two retries, then give up
    assert_no_secret(caught.value)


async def test_500_then_success(fake_openai: FakeOpenAI, make_provider: ProviderFactory) -> None:
    fake_openai.script(Status(500), Text(chunks=["ok"]))
    response = await make_provider().complete(REQUEST)

    assert response.content == "ok"
    assert fake_openai.request_count == 2


async def test_mid_stream_disconnect_is_an_error_without_retry(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(Disconnect(chunks=["Partial", " answer"]), Text())
    received: list[str] = []
    with pytest.raises(LLMError) as caught:
        async for item in make_provider().stream(REQUEST):
            if isinstance(item, LLMDelta):
                received.append(item.text)

    assert received == ["Partial", " answer"]
    assert caught.value.code == "llm_unavailable"
    assert fake_openai.request_count == 1  # text had reached the caller: no retry


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(Slow(interval=0.1, duration=10))
    got_two = asyncio.Event()

    async def consume() -> None:
        count = 0
        async for item in make_provider().stream(REQUEST):
            count += isinstance(item, LLMDelta)
            if count == 2:
                got_two.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_two.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(fake_openai.disconnected.wait, 2.0)
    assert fake_openai.disconnected_at is not None
    assert fake_openai.disconnected_at - cancelled_at < 1.0


async def test_cancel_through_the_cache_closes_the_upstream_connection(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    # A cacheable request runs in a single-flight producer task: when its only caller goes
    # away the producer must be cancelled too, closing the connection.
    fake_openai.script(Slow(interval=0.1, duration=10))
    llm = CachedLLM(make_provider(), store=MemoryCacheStore(), ttl=60)
    got_one = asyncio.Event()

    async def consume() -> None:
        async for item in llm.stream(REQUEST):
            if isinstance(item, LLMDelta):
                got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(fake_openai.disconnected.wait, 2.0)
    assert fake_openai.disconnected_at is not None
    assert fake_openai.disconnected_at - cancelled_at < 1.0


async def test_api_key_never_appears_in_errors(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    echo = f'{{"error": {{"message": "Incorrect API key provided: {API_KEY}"}}}}'
    fake_openai.script(Status(401, body=echo))
    with pytest.raises(LLMError) as caught:
        await make_provider().complete(REQUEST)

    assert caught.value.code == "llm_unauthorized" and not caught.value.retryable
    assert fake_openai.request_count == 1  # a bad key is not retried
    assert_no_secret(caught.value)


async def test_read_timeout_is_llm_timeout_without_retry(
    fake_openai: FakeOpenAI, make_provider: ProviderFactory
) -> None:
    fake_openai.script(Hang(seconds=3))
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        await make_provider(timeout=0.3).complete(REQUEST)

    assert caught.value.code == "llm_timeout"
    assert time.monotonic() - started < 1.5
    assert fake_openai.request_count == 1


async def test_connection_refused_is_retried_then_unavailable(
    make_provider: ProviderFactory,
) -> None:
    provider = make_provider(base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(LLMError) as caught:
        await provider.complete(REQUEST)

    assert caught.value.code == "llm_unavailable"
    assert_no_secret(caught.value)


async def test_factory_builds_the_openai_provider_with_settings_defaults(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory
) -> None:
    settings = make_settings(
        LLM_PROVIDER="openai",
        OPENAI_BASE_URL=fake_openai.url,
        OPENAI_API_KEY=API_KEY,
        OPENAI_MODEL="served-model",
        OPENAI_TEMPERATURE=0.3,
        OPENAI_MAX_TOKENS=64,
    )
    llm = build_llm(settings, None)
    try:
        first = await llm.complete(REQUEST)
        second = await llm.complete(REQUEST)
    finally:
        await llm.aclose()

    assert first.content == second.content == "Hello from the fake."
    body = fake_openai.requests[0].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("served-model", 0.3, 64)
    # The configured default temperature is not 0, so neither answer came from the cache.
    assert fake_openai.request_count == 2 and not second.cached

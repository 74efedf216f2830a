"""The offline provider: deterministic answers, real incremental streaming, tools, usage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.llm.offline import OfflineProvider, find_expression
from app.llm.types import ChatMessage, LLMDelta, LLMFinal, LLMRequest, ToolCall, ToolSpec

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate arithmetic.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
)
CURRENT_TIME = ToolSpec(
    name="current_time", description="Now.", parameters={"type": "object", "properties": {}}
)


def ask(text: str, *, tools: list[ToolSpec] | None = None, **fields: Any) -> LLMRequest:
    return LLMRequest(
        messages=[
            ChatMessage(role="system", content="You are terse."),
            ChatMessage(role="user", content=text),
        ],
        tools=tools or [],
        **fields,
    )


def fast() -> OfflineProvider:
    return OfflineProvider(latency_ms=0, tokens_per_second=0)


async def test_same_request_same_answer_and_different_requests_differ() -> None:
    provider = fast()
    first = await provider.complete(ask("Tell me about Redis"))
    again = await OfflineProvider(latency_ms=0, tokens_per_second=0).complete(
        ask("Tell me about Redis")
    )
    other = await provider.complete(ask("Tell me about Kubernetes"))

    assert first == again
    assert first.content != other.content
    assert "Tell me about Redis" in first.content  # it comments on the question
    assert first.finish_reason == "stop" and first.model == "offline"


async def test_stream_matches_complete() -> None:
    provider = fast()
    request = ask("How do circuit breakers work?")
    items = [item async for item in provider.stream(request)]
    final = items[-1]

    assert isinstance(final, LLMFinal)
    assert all(isinstance(item, LLMDelta) for item in items[:-1])
    assert "".join(item.text for item in items[:-1] if isinstance(item, LLMDelta)) == (
        final.response.content
    )
    assert final.response == await provider.complete(request)


async def test_usage_counts_words() -> None:
    provider = fast()
    request = ask("one two three four")  # + 3 words of system prompt
    items = [item async for item in provider.stream(request)]
    deltas = [item for item in items if isinstance(item, LLMDelta)]
    usage = items[-1].response.usage  # type: ignore[union-attr]

    assert usage.prompt_tokens == 7
    assert usage.completion_tokens == len(deltas) == len(items[-1].response.content.split())  # type: ignore[union-attr]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_streaming_is_incremental_after_the_latency() -> None:
    provider = OfflineProvider(latency_ms=150, tokens_per_second=50, response_tokens=10)
    started = time.monotonic()
    arrivals = [time.monotonic() - started async for item in provider.stream(ask("hi"))]

    first_delta, last_delta = arrivals[0], arrivals[-2]
    assert 0.14 <= first_delta < 0.4  # after the latency, not after the whole answer
    # 10 tokens at 50/s: the last one ~0.18 s after the first.
    assert last_delta - first_delta >= 0.15
    assert first_delta < last_delta


async def test_tokens_per_second_is_roughly_honoured() -> None:
    provider = OfflineProvider(latency_ms=0, tokens_per_second=100, response_tokens=31)
    started = time.monotonic()
    response = await provider.complete(ask("rate"))
    elapsed = time.monotonic() - started

    assert response.usage.completion_tokens == 31
    assert 0.28 <= elapsed < 0.8  # 30 intervals of 10 ms


async def test_zero_tokens_per_second_is_as_fast_as_possible() -> None:
    provider = OfflineProvider(latency_ms=0, tokens_per_second=0, response_tokens=5000)
    started = time.monotonic()
    response = await provider.complete(ask("fast"))

    assert response.usage.completion_tokens == 5000
    assert time.monotonic() - started < 1.0


async def test_a_long_answer_made_word_by_word_says_what_a_short_one_says() -> None:
    # Up to 1,024 tokens an answer's tokens are shared between calls; past that they are
    # made as they are said. Both must say the same words, spaced the same way.
    short = OfflineProvider(latency_ms=0, tokens_per_second=0, response_tokens=1000)
    long = OfflineProvider(latency_ms=0, tokens_per_second=0, response_tokens=3000)
    deltas = [item.text async for item in long.stream(ask("q")) if isinstance(item, LLMDelta)]
    final = await long.complete(ask("q"))

    assert len(deltas) == 3000 and "".join(deltas) == final.content
    assert all(delta.endswith(" ") for delta in deltas[:-1]) and not deltas[-1].endswith(" ")
    assert final.content.startswith((await short.complete(ask("q"))).content + " ")


async def test_fixed_response_length_and_max_tokens() -> None:
    provider = OfflineProvider(latency_ms=0, tokens_per_second=0, response_tokens=25)
    full = await provider.complete(ask("length please"))
    cut = await provider.complete(ask("length please", max_tokens=10))

    assert len(full.content.split()) == 25 and full.usage.completion_tokens == 25
    assert full.finish_reason == "stop"
    assert len(cut.content.split()) == 10 and cut.finish_reason == "length"
    assert full.content.startswith(cut.content)


async def test_arithmetic_with_calculator_becomes_a_tool_call() -> None:
    response = await fast().complete(ask("what is 12*(3+4)?", tools=[CALCULATOR, CURRENT_TIME]))

    assert response.finish_reason == "tool_calls"
    assert response.content == ""
    [call] = response.tool_calls
    assert call.name == "calculator" and call.arguments == {"expression": "12*(3+4)"}
    assert call.id.startswith("call_")


async def test_arithmetic_without_calculator_is_answered_in_text() -> None:
    response = await fast().complete(ask("what is 12*(3+4)?", tools=[CURRENT_TIME]))

    assert response.finish_reason == "stop" and not response.tool_calls and response.content


async def test_time_question_calls_current_time() -> None:
    response = await fast().complete(ask("What time is it?", tools=[CALCULATOR, CURRENT_TIME]))

    assert response.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("current_time", {})]


async def test_answer_after_a_tool_result_uses_it() -> None:
    call = ToolCall(id="call_1", name="calculator", arguments={"expression": "12*(3+4)"})
    request = LLMRequest(
        messages=[
            ChatMessage(role="user", content="what is 12*(3+4)?"),
            ChatMessage(role="assistant", tool_calls=[call]),
            ChatMessage(role="tool", content="84", tool_call_id="call_1"),
        ],
        tools=[CALCULATOR],
    )
    items = [item async for item in fast().stream(request)]
    final = items[-1]

    assert isinstance(final, LLMFinal)
    assert final.response.content == "The result is 84."
    assert final.response.finish_reason == "stop" and not final.response.tool_calls
    assert len(items) == 5  # four word tokens, then the final


async def test_cancelling_during_the_latency_is_immediate() -> None:
    provider = OfflineProvider(latency_ms=5000, tokens_per_second=10)
    task = asyncio.create_task(provider.complete(ask("slow")))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.1


async def test_closing_the_stream_mid_answer_stops_it() -> None:
    provider = OfflineProvider(latency_ms=0, tokens_per_second=20, response_tokens=100)
    stream = provider.stream(ask("long"))
    first = await anext(stream)
    started = time.monotonic()
    await stream.aclose()

    assert isinstance(first, LLMDelta)
    assert time.monotonic() - started < 0.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what is 12*(3+4)?", "12*(3+4)"),
        ("compute 2 ** 10 please", "2 ** 10"),
        ("and 7 % 3.", "7 % 3"),
        ("(1.5 + 2) / 7", "(1.5 + 2) / 7"),
        ("I have 3 apples - and 2 pears", None),
        ("no numbers here", None),
        ("just 42", None),
        ("unbalanced (3+4", "3+4"),
    ],
)
def test_find_expression(text: str, expected: str | None) -> None:
    assert find_expression(text) == expected

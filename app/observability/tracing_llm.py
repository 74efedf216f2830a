"""``chat {model}``: one span per LLM call, around the stream the cache hands the caller.

The span is current only while the stream takes its first step (the first ``__anext__``),
never between items: the cache lookup, the single-flight producer task it may start and the
provider's HTTP request with its retries (whose httpx span carries ``traceparent``
upstream) all happen there, so they are its children, while the caller's own work between
tokens is not (and a token costs no context switch). Its end records the response model,
usage, finish reason and whether our cache answered. Imported only when tracing is on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from app.observability.tracing_genai import (
    ERROR_TYPE,
    ChatRequestLike,
    ChatResponseLike,
    Event,
    GenAIConventions,
)

T = TypeVar("T")


def _record(span: Span, attributes: dict[str, str], events: list[Event]) -> None:
    span.set_attributes(attributes)
    for name, event_attributes in events:
        span.add_event(name, event_attributes)


def _observe(span: Span, genai: GenAIConventions, item: object, *, cacheable: bool) -> None:
    # ``kind`` is a field of every stream item (a missing attribute would cost a pydantic
    # lookup per token); the final item holds the whole answer.
    if getattr(item, "kind", None) != "final" or not span.is_recording():
        return
    response: ChatResponseLike = getattr(item, "response")  # noqa: B009 - typed by shape
    span.set_attributes(genai.response_attributes(response, cacheable=cacheable))
    if genai.capture_content:
        _record(span, *genai.output_content(response))


async def traced_stream(
    tracer: Tracer,
    genai: GenAIConventions,
    items: AsyncGenerator[T, None],
    *,
    provider: str,
    request: ChatRequestLike,
    server: str | None,
    cacheable: bool,
) -> AsyncGenerator[T, None]:
    span = tracer.start_span(
        f"chat {request.model or ''}".rstrip(),
        kind=SpanKind.CLIENT,
        attributes=genai.chat_attributes(provider=provider, request=request, server=server),
    )
    if genai.capture_content and span.is_recording():
        _record(span, *genai.input_content(request.messages))
    current = trace.set_span_in_context(span)
    try:
        # The first step does the work that belongs under this span: the cache lookup, the
        # start of a single-flight producer task (which keeps the context it was made in),
        # the provider's request and its retries. Later steps only read what arrives.
        token = otel_context.attach(current)
        try:
            first = await anext(items)
        except StopAsyncIteration:
            return
        finally:
            otel_context.detach(token)
        _observe(span, genai, first, cacheable=cacheable)
        yield first
        async for item in items:
            # ``kind`` is a field of every stream item; tokens pass with this one test.
            if getattr(item, "kind", None) == "final":
                _observe(span, genai, item, cacheable=cacheable)
            yield item
    except Exception as exc:
        # The code of an LLMError says what failed (llm_timeout, llm_rate_limited, ...);
        # its message is not recorded: it may quote the upstream's answer.
        code = getattr(exc, "code", None) or type(exc).__qualname__
        span.set_attribute(ERROR_TYPE, code)
        span.set_status(StatusCode.ERROR, code)
        raise
    finally:
        try:
            await items.aclose()  # closing this stream closes the upstream call at once
        finally:
            span.end()

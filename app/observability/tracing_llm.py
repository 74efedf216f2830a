"""``chat {model}``: one span per LLM call, around the stream the cache hands the caller.

The span is current only while the stream takes its first step (the first ``__anext__``):
the cache lookup, the single-flight producer task it may start and the provider's HTTP
request with its retries (whose httpx span carries ``traceparent`` upstream) all happen
there, so they are its children, while the caller's own work between tokens is not. After
that first step ``TracedChat`` is out of the way: each later ``__anext__`` is the inner
stream's own (a wrapping generator cost every token a resumption, a third of the chat
span's cost on a 20-token answer and all of it on long ones). What the span records at its
end, the producer tells it through a ``ChatOutcome`` (app/llm/cache.py and
app/llm/metrics.py): the final answer (response model, usage, finish reason, whether our
cache answered) or the error, and the span ends then; a stream closed before either ends
it at its close. Imported only when tracing is on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from app.observability.fast_context import attach, detach, with_span
from app.observability.tracing import ChatOutcome
from app.observability.tracing_genai import (
    ERROR_TYPE,
    ChatRequestLike,
    Event,
    GenAIConventions,
)

T = TypeVar("T")


def _record(span: Span, attributes: dict[str, str], events: list[Event]) -> None:
    span.set_attributes(attributes)
    for name, event_attributes in events:
        span.add_event(name, event_attributes)


class TracedChat(AsyncGenerator[T, None]):
    def __init__(
        self,
        tracer: Tracer,
        genai: GenAIConventions,
        items: AsyncGenerator[T, None],
        *,
        provider: str,
        request: ChatRequestLike,
        server: str | None,
        cacheable: bool,
        outcome: ChatOutcome,
    ) -> None:
        self._items = items
        self._genai = genai
        self._cacheable = cacheable
        self._outcome = outcome
        self._started = self._ended = False
        self._span = span = tracer.start_span(
            f"chat {request.model or ''}".rstrip(),
            kind=SpanKind.CLIENT,
            attributes=genai.chat_attributes(provider=provider, request=request, server=server),
        )
        if genai.capture_content and span.is_recording():
            _record(span, *genai.input_content(request.messages))
        outcome.when_ended(self._end)

    def __aiter__(self) -> TracedChat[T]:
        return self

    # The inner generator's own awaitable, not a coroutine of ours: that is the point.
    def __anext__(self) -> Awaitable[T]:  # type: ignore[override]
        if self._started:
            return self._items.__anext__()  # the inner stream's own step: nothing of ours
        self._started = True
        return self._first()

    async def _first(self) -> T:
        # The first step does the work that belongs under this span: the cache lookup, the
        # start of a single-flight producer task (which keeps the context it was made in),
        # the provider's request and its retries. Later steps only read what arrives.
        token = attach(with_span(self._span))
        try:
            return await anext(self._items)
        except StopAsyncIteration:
            self._end()
            raise
        except Exception as exc:
            self._outcome.failed(exc)  # ends the span, unless the producer said so first
            self._end()
            raise
        finally:
            detach(token)

    async def asend(self, value: None) -> T:
        return await self.__anext__()

    async def athrow(self, *args: Any) -> T:
        return await self._items.athrow(*args)

    async def aclose(self) -> None:
        try:
            await self._items.aclose()  # closing this stream closes the upstream call at once
        finally:
            self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        span, outcome = self._span, self._outcome
        if outcome.response is not None and span.is_recording():
            genai = self._genai
            span.set_attributes(
                genai.response_attributes(outcome.response, cacheable=self._cacheable)
            )
            if genai.capture_content:
                _record(span, *genai.output_content(outcome.response))
        if outcome.error is not None:
            # The code of an LLMError says what failed (llm_timeout, llm_rate_limited, ...);
            # its message is not recorded: it may quote the upstream's answer.
            error = outcome.error
            code = getattr(error, "code", None) or type(error).__qualname__
            span.set_attribute(ERROR_TYPE, code)
            span.set_status(StatusCode.ERROR, code)
        span.end()

"""A provider for any OpenAI-compatible chat completions server (OpenAI, vLLM, Ollama, ...).

Every call streams (``stream: true`` with usage in the last chunk): ``complete()`` drains the
same stream, so retries, parsing and errors have one code path, and the read timeout bounds
the gap between chunks rather than the whole answer. One ``httpx.AsyncClient`` per provider,
built in the lifespan (docs/architecture.md). Retries (429, 5xx, connection errors) only happen
before the first item is yielded: once text reached the caller a retry would duplicate it.
The request is sent inside ``async with client.stream(...)``, so closing this generator or
cancelling the task that consumes it closes the upstream connection at once. With tracing
on, the client is instrumented: each attempt is a client span and carries ``traceparent``.

Failures are classified in app/llm/openai_failures.py (what the client reads, whether
retrying helps) and logged once, when final, by app/llm/failures.py; each retry logs one
``llm_retry`` line with the host and the cause.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx
import structlog

from app.core.llm_settings import OpenAISettings
from app.llm.openai_failures import (
    Failure,
    bad_response,
    is_html,
    read_error_body,
    status_failure,
    transport_failure,
)
from app.llm.openai_wire import read_events, wire_message
from app.llm.protocol import LLMError, RequestDefaults
from app.llm.types import LLMFinal, LLMRequest, LLMResponse, LLMStreamItem
from app.observability import tracing

log = structlog.get_logger(__name__)


def url_host(url: str) -> str:
    """host[:port] of a URL: what the logs name, never the credentials or the path."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host


class OpenAICompatProvider:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        max_tokens: int | None = None,
        temperature: float | None = None,
        retry_after_cap: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
    ) -> None:
        self.model = model
        self.host = url_host(base_url)
        self.defaults = RequestDefaults(temperature=temperature, max_tokens=max_tokens)
        self._api_key = api_key
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_retries = max_retries
        self._max_tokens = max_tokens
        self._retry_after_cap = retry_after_cap
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        # Tracing on: a client span per request, and traceparent to the upstream.
        tracing.instrument_httpx(self._client)

    @classmethod
    def from_settings(cls, settings: OpenAISettings) -> OpenAICompatProvider:
        key = settings.API_KEY
        return cls(
            base_url=settings.BASE_URL,
            model=settings.MODEL,
            api_key=key.get_secret_value() if key else None,
            timeout=settings.TIMEOUT_SECONDS,
            connect_timeout=settings.CONNECT_TIMEOUT_SECONDS,
            max_retries=settings.MAX_RETRIES,
            max_tokens=settings.MAX_TOKENS,
            temperature=settings.TEMPERATURE,
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        async with aclosing(self.stream(request)) as items:
            async for item in items:
                if isinstance(item, LLMFinal):
                    return item.response
        raise bad_response("ended the stream without a final answer")  # pragma: no cover

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMStreamItem, None]:
        payload = self._payload(request)
        model = str(payload["model"])
        attempt = 0
        while True:
            yielded = False
            try:
                async with self._client.stream("POST", "/chat/completions", json=payload) as resp:
                    if resp.status_code == httpx.codes.OK and not is_html(resp):
                        async for item in read_events(resp, model):
                            yielded = True
                            yield item
                        return
                    body = await read_error_body(resp)
                    failure = status_failure(resp, body, model=model, secret=self._api_key)
            except httpx.HTTPError as exc:
                failure = transport_failure(
                    exc,
                    read_timeout=self._timeout,
                    connect_timeout=self._connect_timeout,
                    mid_stream=yielded,
                )
            except LLMError as exc:  # a malformed answer: asking again would get the same
                failure = Failure(exc, retry=False)
            error = failure.error
            error.host, error.attempts = self.host, attempt + 1
            delay = self._retry_delay(failure, attempt, yielded=yielded)
            if delay is None:
                raise error
            log.warning(
                "llm_retry",
                provider=self.name,
                host=self.host,
                code=error.code,
                cause=error.cause,
                attempt=attempt + 1,
                delay_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._client.aclose()

    def _payload(self, request: LLMRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [wire_message(message) for message in request.messages],
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        max_tokens = request.max_tokens or self._max_tokens
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if request.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
        return payload

    def _retry_delay(self, failure: Failure, attempt: int, *, yielded: bool) -> float | None:
        """Seconds to wait before trying again, or None to give up now."""
        if yielded or not failure.retry or attempt >= self._max_retries:
            return None
        if failure.error.retry_after is not None:
            return min(failure.error.retry_after, self._retry_after_cap)
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0**attempt)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

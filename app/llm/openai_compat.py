"""A provider for any OpenAI-compatible chat completions server (OpenAI, vLLM, Ollama, ...).

Every call streams (``stream: true`` with usage in the last chunk): ``complete()`` drains the
same stream, so retries, parsing and errors have one code path, and the read timeout bounds
the gap between chunks rather than the whole answer. One ``httpx.AsyncClient`` per provider,
built in the lifespan (CONVENTIONS.md 9). Retries (429, 5xx, connection errors) only happen
before the first item is yielded: once text reached the caller a retry would duplicate it.
The request is sent inside ``async with client.stream(...)``, so closing this generator or
cancelling the task that consumes it closes the upstream connection at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from app.core.config import Settings
from app.llm.protocol import LLMError
from app.llm.types import (
    ChatMessage,
    FinishReason,
    LLMDelta,
    LLMFinal,
    LLMRequest,
    LLMResponse,
    LLMStreamItem,
    ToolCall,
    Usage,
)

log = structlog.get_logger(__name__)

RATE_LIMITED = "llm_rate_limited"
UNAVAILABLE = "llm_unavailable"
TIMEOUT = "llm_timeout"
BAD_RESPONSE = "llm_bad_response"
UNAUTHORIZED = "llm_unauthorized"  # 401/403: the key is wrong; retrying cannot help
REJECTED = "llm_rejected"  # other 4xx: the server refused this request
_TRANSIENT = {RATE_LIMITED, UNAVAILABLE, TIMEOUT}
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_ERROR_BODY_BYTES = 2048


def _error(message: str, code: str) -> LLMError:
    return LLMError(message, code=code, retryable=code in _TRANSIENT)


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def build(self, index: int) -> ToolCall:
        text = "".join(self.arguments).strip() or "{}"
        try:
            arguments = json.loads(text)
        except ValueError:
            raise _error(
                "LLM server sent tool call arguments that are not JSON", BAD_RESPONSE
            ) from None
        if not isinstance(arguments, dict) or not self.name:
            raise _error("LLM server sent a malformed tool call", BAD_RESPONSE)
        return ToolCall(id=self.id or f"call_{index}", name=self.name, arguments=arguments)


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
        retry_after_cap: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
    ) -> None:
        self.model = model
        self._api_key = api_key
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

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatProvider:
        key = settings.OPENAI_API_KEY
        return cls(
            base_url=settings.OPENAI_BASE_URL,
            model=settings.OPENAI_MODEL,
            api_key=key.get_secret_value() if key else None,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
            connect_timeout=settings.OPENAI_CONNECT_TIMEOUT_SECONDS,
            max_retries=settings.OPENAI_MAX_RETRIES,
            max_tokens=settings.OPENAI_MAX_TOKENS,
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        async with aclosing(self.stream(request)) as items:
            async for item in items:
                if isinstance(item, LLMFinal):
                    return item.response
        raise _error("LLM stream ended without a final answer", BAD_RESPONSE)  # pragma: no cover

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMStreamItem, None]:
        payload = self._payload(request)
        model = str(payload["model"])
        attempt = 0
        while True:
            yielded = False
            delay: float | None = None
            try:
                async with self._client.stream("POST", "/chat/completions", json=payload) as resp:
                    if resp.status_code == httpx.codes.OK:
                        async for item in _read_events(resp, model):
                            yielded = True
                            yield item
                        return
                    error, delay = await self._status_error(resp, attempt)
            except httpx.HTTPError as exc:
                if yielded:
                    # Text already reached the caller: a retry would repeat it.
                    code = TIMEOUT if isinstance(exc, httpx.TimeoutException) else UNAVAILABLE
                    raise _error(f"LLM stream broke off ({type(exc).__name__})", code) from exc
                error, delay = self._transport_error(exc, attempt)
            if delay is None:
                raise error
            log.warning("llm_retry", code=error.code, attempt=attempt + 1, delay_s=round(delay, 3))
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- request and failure handling ---------------------------------------------------------

    def _payload(self, request: LLMRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [_wire_message(message) for message in request.messages],
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

    async def _status_error(
        self, response: httpx.Response, attempt: int
    ) -> tuple[LLMError, float | None]:
        status = response.status_code
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_BYTES:
                break
        # The body is for the log only (some servers echo credentials); the error stays generic.
        log.warning("llm_http_error", status=status, body=self._redact(body[:_ERROR_BODY_BYTES]))
        if status == httpx.codes.TOO_MANY_REQUESTS:
            code, retry = RATE_LIMITED, True
        elif status == httpx.codes.REQUEST_TIMEOUT:
            code, retry = TIMEOUT, True
        elif status >= 500:
            code, retry = UNAVAILABLE, True
        elif status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            code, retry = UNAUTHORIZED, False
        else:
            code, retry = REJECTED, False
        attempts = f" after {attempt + 1} attempts" if retry and attempt else ""
        error = _error(f"LLM server answered HTTP {status}{attempts}", code)
        if not retry or attempt >= self._max_retries:
            return error, None
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            return error, min(retry_after, self._retry_after_cap)
        return error, self._backoff(attempt)

    def _transport_error(self, exc: httpx.HTTPError, attempt: int) -> tuple[LLMError, float | None]:
        # Connection failures never reached the model: safe to retry. A read timeout may mean
        # the model is busy generating, and retrying would double the wait: give up.
        if isinstance(exc, httpx.ConnectTimeout):
            error, retry = _error("LLM server connect timeout", TIMEOUT), True
        elif isinstance(exc, httpx.TimeoutException):
            error, retry = _error(f"LLM server timed out ({type(exc).__name__})", TIMEOUT), False
        elif isinstance(exc, httpx.TransportError):
            error, retry = (
                _error(f"LLM server unreachable ({type(exc).__name__})", UNAVAILABLE),
                True,
            )
        else:
            error, retry = _error(f"LLM call failed ({type(exc).__name__})", BAD_RESPONSE), False
        error.__cause__ = exc
        if not retry or attempt >= self._max_retries:
            return error, None
        return error, self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0**attempt)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    def _redact(self, body: bytes) -> str:
        text = body.decode("utf-8", "replace")
        return text.replace(self._api_key, "***") if self._api_key else text


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None when absent/invalid."""
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    if message.name and message.role != "tool":
        wire["name"] = message.name
    return wire


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        # comments (": ping"), event:, id: and retry: lines carry nothing we need
    if lines:
        yield "\n".join(lines)


async def _read_events(response: httpx.Response, model: str) -> AsyncIterator[LLMStreamItem]:
    content: list[str] = []
    calls: dict[int, _PartialCall] = {}
    usage: Usage | None = None
    finish: FinishReason | None = None
    done = False
    async for data in _sse_data(response):
        if data.strip() == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            raise _error("LLM server sent an event that is not JSON", BAD_RESPONSE) from None
        if not isinstance(chunk, dict):
            raise _error("LLM server sent an unexpected event", BAD_RESPONSE)
        if chunk.get("error"):
            raise _error("LLM server reported an error mid-stream", UNAVAILABLE)
        model = str(chunk.get("model") or model)
        if isinstance(chunk.get("usage"), dict):
            usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                content.append(text)
                yield LLMDelta(text=text)
            for position, part in enumerate(delta.get("tool_calls") or []):
                _merge_tool_call(calls, part, position)
            if choice.get("finish_reason"):
                finish = _FINISH.get(str(choice["finish_reason"]), "stop")
    if not done and finish is None:
        raise _error("LLM stream ended before the answer was complete", BAD_RESPONSE)
    tool_calls = [calls[index].build(index) for index in sorted(calls)]
    if tool_calls and finish in (None, "stop"):
        finish = "tool_calls"  # some servers (Ollama) say "stop" after a tool call
    yield LLMFinal(
        response=LLMResponse(
            content="".join(content),
            tool_calls=tool_calls,
            usage=usage or Usage(),
            finish_reason=finish or "stop",
            model=model,
        )
    )


def _merge_tool_call(calls: dict[int, _PartialCall], part: Any, position: int) -> None:
    if not isinstance(part, dict):
        raise _error("LLM server sent a malformed tool call", BAD_RESPONSE)
    index = part.get("index")
    call = calls.setdefault(index if isinstance(index, int) else position, _PartialCall())
    call.id = call.id or str(part.get("id") or "")
    function = part.get("function") or {}
    call.name = call.name or str(function.get("name") or "")
    if function.get("arguments"):
        call.arguments.append(str(function["arguments"]))


def _usage(raw: dict[str, Any]) -> Usage:
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    total = int(raw.get("total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)

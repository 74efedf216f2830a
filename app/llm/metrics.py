"""Prometheus metrics of the LLM layer: upstream calls, tokens, latency and the response cache.

Declared at module level like ``app/observability/metrics.py`` (defining them connects to
nothing; under gunicorn they write to PROMETHEUS_MULTIPROC_DIR). Label values are bounded:
provider and model come from configuration, outcome and result from the fixed sets below.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

from prometheus_client import Counter, Histogram

from app.llm.failures import log_failure
from app.llm.protocol import LLMError, LLMProvider
from app.llm.types import LLMFinal, LLMRequest, LLMStreamItem, Usage
from app.observability.metrics import labelled
from app.observability.tracing import ChatOutcome

CacheResult = Literal["hit", "miss", "bypass", "error"]
# "ok" and the LLMError codes for upstream calls; "cached" when the answer came from the cache
# or from an identical call already in flight; "cancelled" when the caller went away first.
Outcome = str

CACHE_REQUESTS = Counter(
    "llm_cache_requests_total",
    "LLM cache lookups: hit, miss, bypass (not cacheable or opted out) or error (backend down).",
    ["result"],
)
CACHE_TOKENS_SAVED = Counter(
    "llm_cache_tokens_saved_total",
    "Tokens (prompt + completion) answered from the cache instead of the provider.",
)
LLM_REQUESTS = Counter(
    "llm_requests_total",
    "LLM requests by provider, model and outcome.",
    ["provider", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "llm_tokens_total",
    "Tokens spent at the provider (cache hits excluded).",
    ["provider", "kind"],
)
LLM_DURATION = Histogram(
    "llm_request_duration_seconds",
    "Duration of upstream LLM calls, until the last token.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
LLM_TTFT = Histogram(
    "llm_time_to_first_token_seconds",
    "Time from an upstream LLM call to its first streamed text.",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def record_cache(result: CacheResult) -> None:
    labelled(CACHE_REQUESTS, result).inc()


def record_served_from_cache(*, provider: str, model: str, usage: Usage) -> None:
    labelled(LLM_REQUESTS, provider, model, "cached").inc()
    CACHE_TOKENS_SAVED.inc(usage.total_tokens)


def record_upstream(
    *, provider: str, model: str, outcome: Outcome, duration: float, usage: Usage | None
) -> None:
    labelled(LLM_REQUESTS, provider, model, outcome).inc()
    labelled(LLM_DURATION, provider).observe(duration)
    if usage is not None:
        labelled(LLM_TOKENS, provider, "prompt").inc(usage.prompt_tokens)
        labelled(LLM_TOKENS, provider, "completion").inc(usage.completion_tokens)


def record_first_token(*, provider: str, seconds: float) -> None:
    labelled(LLM_TTFT, provider).observe(seconds)


async def instrumented(
    provider: LLMProvider, request: LLMRequest, *, chat: ChatOutcome | None = None
) -> AsyncGenerator[LLMStreamItem, None]:
    """``provider.stream(request)`` with request, token and latency metrics; closes it on exit.

    Every upstream call passes here exactly once, so this is also where a final failure is
    logged (``llm_call_failed``), for built-in and plug-in providers alike, and where the
    call's ``chat`` span is told how it ended (``chat``, when it is traced).
    """
    name = provider.name
    started = time.monotonic()
    first = True
    result: Outcome = "cancelled"
    usage: Usage | None = None
    items: AsyncIterator[LLMStreamItem] = provider.stream(request)
    try:
        async for item in items:
            if first:  # text, or the final item of an answer that is only tool calls
                record_first_token(provider=name, seconds=time.monotonic() - started)
                first = False
            if isinstance(item, LLMFinal):
                result, usage = "ok", item.response.usage
                if chat is not None:
                    chat.final(item.response)
            yield item
    except LLMError as exc:
        result = exc.code
        log_failure(provider=name, model=request.model or provider.model, error=exc)
        if chat is not None:
            chat.failed(exc)
        raise
    except Exception as exc:
        result = "error"
        log_failure(provider=name, model=request.model or provider.model, error=exc)
        if chat is not None:
            chat.failed(exc)
        raise
    finally:
        aclose = getattr(items, "aclose", None)  # the protocol promises an iterator only
        if aclose is not None:
            await aclose()
        record_upstream(
            provider=name,
            model=request.model or provider.model,
            outcome=result,
            duration=time.monotonic() - started,
            usage=usage,
        )

"""Stream one LLM call as token events, keeping the final response.

``StreamedCall`` is how an agent streams a model's answer to the client and still gets the
whole response (content, tool calls, usage) afterwards; ``generation_params`` reads
``temperature`` and ``max_tokens`` from a run's params.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from app.agents.context import RunContext
from app.agents.errors import RunFailure
from app.agents.events import TokenEvent, token_event
from app.llm.types import LLMDelta, LLMRequest, LLMResponse


class StreamedCall:
    """``async for event in call`` yields TokenEvents; ``call.response`` is set at the end."""

    def __init__(self, ctx: RunContext, request: LLMRequest) -> None:
        self._ctx = ctx
        self._request = request
        self._response: LLMResponse | None = None  # an empty one is made only if asked early

    @property
    def response(self) -> LLMResponse:
        return self._response if self._response is not None else LLMResponse()

    @response.setter
    def response(self, response: LLMResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        async with aclosing(self._ctx.llm.stream(self._request)) as items:  # type: ignore[type-var]
            async for item in items:
                if isinstance(item, LLMDelta):
                    if item.text:
                        yield token_event(item.text)
                else:
                    self.response = item.response


def generation_params(params: dict[str, Any]) -> dict[str, Any]:
    """temperature and max_tokens from a run's params, checked (a bad value ends the run)."""
    chosen: dict[str, Any] = {}
    try:
        if "temperature" in params:
            chosen["temperature"] = float(params["temperature"])
            if not 0 <= chosen["temperature"] <= 2:
                raise ValueError
        if "max_tokens" in params:
            chosen["max_tokens"] = int(params["max_tokens"])
            if chosen["max_tokens"] < 1:
                raise ValueError
    except (TypeError, ValueError):
        raise RunFailure(
            "params: temperature must be 0..2 and max_tokens >= 1", code="invalid_params"
        ) from None
    return chosen

"""Stream one LLM call as token events, keeping the final response."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.agents.context import RunContext
from app.agents.events import TokenEvent
from app.llm.types import LLMDelta, LLMRequest, LLMResponse


class StreamedCall:
    """``async for event in call`` yields TokenEvents; ``call.response`` is set at the end."""

    def __init__(self, ctx: RunContext, request: LLMRequest) -> None:
        self._ctx = ctx
        self._request = request
        self.response = LLMResponse()

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        async for item in self._ctx.llm.stream(self._request):
            if isinstance(item, LLMDelta):
                if item.text:
                    yield TokenEvent(text=item.text)
            else:
                self.response = item.response

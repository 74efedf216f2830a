"""The LLM as one run sees it: the shared cached client, plus this run's accounting.

It adds up usage across calls, knows whether every answer came from the cache (X-Cache),
and applies the request's ``Cache-Control: no-cache`` to every call the agent makes. Every
call names the run's principal, which partitions the cache when CACHE_SCOPE=principal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Literal, Protocol

from app.llm.types import LLMFinal, LLMRequest, LLMResponse, LLMStreamItem, Usage

CacheStatus = Literal["HIT", "MISS", "BYPASS"]


class CachingLLM(Protocol):
    """What CachedLLM offers (app/llm/cache.py)."""

    async def complete(
        self, request: LLMRequest, *, bypass: bool = False, principal_id: str = ""
    ) -> LLMResponse: ...

    def stream(
        self, request: LLMRequest, *, bypass: bool = False, principal_id: str = ""
    ) -> AsyncIterator[LLMStreamItem]: ...


class RunLLM:
    def __init__(
        self, llm: CachingLLM, *, bypass_cache: bool = False, principal_id: str = ""
    ) -> None:
        self._llm = llm
        self._bypass = bypass_cache
        self._principal_id = principal_id
        self.usage = Usage()
        self.calls = 0
        self.cached_calls = 0

    @property
    def provider(self) -> str:
        """The provider's name (traces name it on the run's span)."""
        return str(getattr(self._llm, "name", ""))

    def _account(self, response: LLMResponse) -> None:
        self.calls += 1
        self.cached_calls += int(response.cached)
        self.usage = self.usage + response.usage

    def add_external(self, usage: Usage, *, cached: bool = False) -> None:
        """A call made by the agent's own client (a framework adapter), counted like ours."""
        self.calls += 1
        self.cached_calls += int(cached)
        self.usage = self.usage + usage

    async def complete(self, request: LLMRequest) -> LLMResponse:
        response = await self._llm.complete(
            request, bypass=self._bypass, principal_id=self._principal_id
        )
        self._account(response)
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamItem]:
        # aclosing: an agent that stops reading early closes the upstream call now, not at GC.
        upstream = self._llm.stream(request, bypass=self._bypass, principal_id=self._principal_id)
        async with aclosing(upstream) as items:  # type: ignore[type-var]
            async for item in items:
                if isinstance(item, LLMFinal):
                    self._account(item.response)
                yield item

    @property
    def all_cached(self) -> bool:
        return self.calls > 0 and self.cached_calls == self.calls

    @property
    def cache_status(self) -> CacheStatus:
        if self._bypass:
            return "BYPASS"
        return "HIT" if self.all_cached else "MISS"

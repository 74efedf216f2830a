"""The LLM as one run sees it: the shared cached client, plus this run's accounting.

It adds up usage across calls, knows whether every answer came from the cache (X-Cache),
and applies the request's ``Cache-Control: no-cache`` to every call the agent makes. Every
call names the run's principal, which partitions the cache when CACHE_SCOPE=principal.
With a usage meter (app/agents/usage.py) each call holds budget first and is recorded in
the ledger after; a call past BUDGET_TOKENS_PER_RUN (this run's own billable tokens) or past
the principal's budgets raises BudgetExceeded, which ends the run ``incomplete``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Literal, Protocol

from app.agents.call_budget import NO_HOLD, BudgetedCall, CallBudget
from app.agents.usage import UsageMeter
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
        self,
        llm: CachingLLM,
        *,
        bypass_cache: bool = False,
        principal_id: str = "",
        meter: UsageMeter | None = None,
        agent: str = "",
        budget: CallBudget | None = None,
    ) -> None:
        self._llm = llm
        self._bypass = bypass_cache
        self._principal_id = principal_id
        self._meter = meter
        self._agent = agent
        # What each call may spend (app/agents/call_budget.py); without one, the deployment's
        # budgets for this principal, and every call recorded in the usage ledger.
        if budget is None and meter is not None:
            budget = CallBudget(meter, principal_id, agent, budgets=meter.budgets)
        self._budget = budget
        self.usage = Usage()
        self.billable_tokens = 0  # not answered from the cache: what a budget counts
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
        if not response.cached:
            self.billable_tokens += response.usage.prompt_tokens + response.usage.completion_tokens

    def add_external(self, usage: Usage, *, cached: bool = False, model: str = "") -> None:
        """A call made by the agent's own client (a framework adapter), counted like ours."""
        self.calls += 1
        self.cached_calls += int(cached)
        self.usage = self.usage + usage
        if not cached:
            self.billable_tokens += usage.prompt_tokens + usage.completion_tokens
        if self._meter is not None:  # recorded with the next batch (nothing was held)
            self._meter.record(self._principal_id, self._agent, model, usage, cached)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        call = await self._hold(request)
        response = None
        try:
            response = await self._llm.complete(
                call.request, bypass=self._bypass, principal_id=self._principal_id
            )
        finally:
            self._settled(call, response)
        self._account(response)
        call.check(response)
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamItem]:
        call = await self._hold(request)
        final = None
        try:
            # aclosing: an agent that stops reading early closes the upstream call now.
            upstream = self._llm.stream(
                call.request, bypass=self._bypass, principal_id=self._principal_id
            )
            async with aclosing(upstream) as items:  # type: ignore[type-var]
                async for item in items:
                    if isinstance(item, LLMFinal):
                        final = item.response
                        self._account(final)
                    yield item
        finally:
            self._settled(call, final)
        call.check(final)

    async def _hold(self, request: LLMRequest) -> BudgetedCall:
        if self._budget is None:
            return BudgetedCall(request, NO_HOLD)
        return await self._budget.hold(request, spent_in_run=self.billable_tokens)

    def _settled(self, call: BudgetedCall, response: LLMResponse | None) -> None:
        """A call's end, answered or not (no answer: its holds go back, nothing is used)."""
        if self._budget is None:
            return
        request = call.request
        if response is None:
            self._budget.settle(call, model=request.model or "", usage=Usage(), cached=False)
        else:
            model = response.model or request.model or ""
            self._budget.settle(call, model=model, usage=response.usage, cached=response.cached)

    @property
    def all_cached(self) -> bool:
        return self.calls > 0 and self.cached_calls == self.calls

    @property
    def cache_status(self) -> CacheStatus:
        if self._bypass:
            return "BYPASS"
        return "HIT" if self.all_cached else "MISS"

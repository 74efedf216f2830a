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
from dataclasses import dataclass
from typing import Literal, Protocol

from app.agents.usage import BudgetExceeded, UsageMeter, estimate_prompt_tokens
from app.core.clock import utcnow
from app.llm.types import LLMFinal, LLMRequest, LLMResponse, LLMStreamItem, Usage
from app.store.usage_ledger import Budgets, Hold

CacheStatus = Literal["HIT", "MISS", "BYPASS"]
NO_HOLD = Hold(0, utcnow())  # nothing held: releasing it changes nothing


@dataclass(frozen=True, slots=True)
class BudgetedCall:
    request: LLMRequest  # max_tokens lowered to what the budgets leave, when they limit it
    hold: Hold
    stop: BudgetExceeded | None = None  # raised when the answer ran into that limit
    pool_hold: Hold = NO_HOLD  # of the tenant's pool, when it has one

    def check(self, response: LLMResponse | None) -> None:
        if self.stop is not None and response is not None and response.finish_reason == "length":
            raise self.stop


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
        run_budget: int = 0,
        budgets: Budgets | None = None,
        pool: Budgets | None = None,
        pool_holder: str = "",
    ) -> None:
        self._llm = llm
        self._bypass = bypass_cache
        self._principal_id = principal_id
        self._meter = meter
        self._agent = agent
        self._run_budget = run_budget  # 0: none
        # The principal's budgets (its tenant's policy, else the deployment's settings).
        self._budgets = budgets if budgets is not None else (meter.budgets if meter else None)
        # The tenant's pool, shared by all its principals (``tenant:<id>`` in the ledger).
        self._pool = pool if pool is not None and pool.any and pool_holder else None
        self._pool_holder = pool_holder
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
        """Budget for one call: refused (BudgetExceeded) when less than its prompt is left,
        else held, and its completion capped (max_tokens) at what is left, so the call stops
        at the budget mid-answer (and the run with it) rather than past it. Held from the
        principal's budgets, then from its tenant's pool (each may lower what is left)."""
        meter, budgets, pool = self._meter, self._budgets, self._pool
        budgeted = meter is not None and budgets is not None and budgets.any
        pooled = meter is not None and pool is not None
        if not self._run_budget and not budgeted and not pooled:
            return BudgetedCall(request, NO_HOLD)
        prompt = estimate_prompt_tokens(request.messages)
        reserve = meter.reserve_tokens if meter is not None else 1024
        wanted = room = prompt + (request.max_tokens or reserve)
        limit: str = "run"
        tenant = False
        if self._run_budget:
            room = min(room, self._run_budget - self.billable_tokens)
            if room <= prompt:
                raise BudgetExceeded("run", None)
        hold = pool_hold = NO_HOLD
        if budgeted and meter is not None and budgets is not None:
            hold = await meter.hold(self._principal_id, room, least=prompt + 1, budgets=budgets)
            if hold.tokens and hold.tokens < room:
                room, limit = hold.tokens, budgets.window
        if pooled and meter is not None and pool is not None:
            try:
                pool_hold = await meter.hold(
                    self._pool_holder, room, least=prompt + 1, budgets=pool, tenant=True
                )
            except BudgetExceeded:
                meter.release(hold)  # the call never starts: the principal's hold goes back
                raise
            if pool_hold.tokens and pool_hold.tokens < room:
                room, limit, tenant = pool_hold.tokens, pool.window, True
        if room >= wanted:
            return BudgetedCall(request, hold, pool_hold=pool_hold)
        capped = request.model_copy(update={"max_tokens": room - prompt})
        retry = meter.retry_after(limit) if meter is not None else None
        return BudgetedCall(capped, hold, BudgetExceeded(limit, retry, tenant=tenant), pool_hold)

    def _settled(self, call: BudgetedCall, response: LLMResponse | None) -> None:
        """A call's end, answered or not (no answer: its hold goes back, nothing is used)."""
        request, hold = call.request, call.hold
        if response is None:
            usage, cached, model = Usage(), False, request.model or ""
        else:
            usage, cached = response.usage, response.cached
            model = response.model or request.model or ""
        self._settle(model, usage, cached, hold)
        if self._meter is not None and self._pool is not None:
            self._meter.settle_pool(
                self._pool_holder, usage=usage, cached=cached, hold=call.pool_hold
            )

    def _settle(self, model: str, usage: Usage, cached: bool, hold: Hold) -> None:
        if self._meter is not None:
            self._meter.settle(
                self._principal_id, self._agent, model=model, usage=usage, cached=cached, hold=hold
            )

    @property
    def all_cached(self) -> bool:
        return self.calls > 0 and self.cached_calls == self.calls

    @property
    def cache_status(self) -> CacheStatus:
        if self._bypass:
            return "BYPASS"
        return "HIT" if self.all_cached else "MISS"

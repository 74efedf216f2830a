"""What one model call may spend, held before it starts and settled when it ends.

Every budget that applies to the run is held in turn, each able to lower what is left: the
run's own (tokens, counted in process), the principal's tokens, its tenant's pool of tokens
(``tenant:<id>`` in the usage ledger) and the principal's cost (``usd:<principal>``, in
micro-USD priced by MODEL_PRICES). The answer is capped (``max_tokens``) at the smallest room,
so the call stops at the budget mid-answer rather than past it; a budget that cannot hold
even the prompt refuses the call (BudgetExceeded) and hands back what the others held. A
cost budget and a model without a price refuse it too (UnpricedModel, the run fails).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.agents.usage import (
    BudgetExceeded,
    BudgetKind,
    UnpricedModel,
    UsageMeter,
    estimate_prompt_tokens,
)
from app.core.budget_settings import ModelPrice
from app.core.clock import utcnow
from app.llm.types import LLMRequest, LLMResponse, Usage
from app.security.tenant_limits import PrincipalLimits
from app.store.usage_ledger import Budgets, Hold

NO_HOLD = Hold(0, utcnow())  # nothing held: releasing it changes nothing


@dataclass(frozen=True, slots=True)
class BudgetedCall:
    request: LLMRequest  # max_tokens lowered to what the budgets leave, when they limit it
    hold: Hold  # of the principal's token budgets
    stop: BudgetExceeded | None = None  # raised when the answer ran into that limit
    # Of the tenant's pool and of the cost budget: (holder, hold, micro-USD per prompt and
    # per completion token; both 0 for a pool of tokens).
    others: tuple[tuple[str, Hold, ModelPrice | None], ...] = field(default=())

    def check(self, response: LLMResponse | None) -> None:
        if self.stop is not None and response is not None and response.finish_reason == "length":
            raise self.stop


@dataclass(frozen=True, slots=True)
class CallBudget:
    meter: UsageMeter
    principal_id: str
    agent: str
    budgets: Budgets  # the principal's tokens (its tenant's policy, else the settings)
    run_budget: int = 0  # tokens per run, 0 = none
    pool: Budgets = field(default_factory=Budgets)  # the tenant's, shared by its principals
    pool_holder: str = ""
    cost: Budgets = field(default_factory=Budgets)  # micro-USD
    prices: dict[str, ModelPrice] = field(default_factory=dict)
    default_model: str = ""  # the provider's, for a request that names none

    @property
    def any(self) -> bool:
        return bool(self.run_budget or self.budgets.any or self.pool.any or self.cost.any)

    async def hold(self, request: LLMRequest, *, spent_in_run: int) -> BudgetedCall:
        if not self.any:
            return BudgetedCall(request, NO_HOLD)
        meter = self.meter
        prompt = estimate_prompt_tokens(request.messages)
        wanted = room = prompt + (request.max_tokens or meter.reserve_tokens)
        limit, kind = "run", "principal"
        if self.run_budget:
            room = min(room, self.run_budget - spent_in_run)
            if room <= prompt:
                raise BudgetExceeded("run", None)
        hold = NO_HOLD
        others: list[tuple[str, Hold, ModelPrice | None]] = []
        try:
            if self.budgets.any:
                hold = await meter.hold(
                    self.principal_id, room, least=prompt + 1, budgets=self.budgets
                )
                if hold.tokens and hold.tokens < room:
                    room, limit = hold.tokens, self.budgets.window
            if self.pool.any:
                held = await meter.hold(
                    self.pool_holder, room, least=prompt + 1, budgets=self.pool, budget="tenant"
                )
                others.append((self.pool_holder, held, None))
                if held.tokens and held.tokens < room:
                    room, limit, kind = held.tokens, self.pool.window, "tenant"
            if self.cost.any:
                room, cost_limit = await self._hold_cost(request, prompt, room, others)
                if cost_limit:
                    limit, kind = cost_limit, "cost"
        except BaseException:  # refused, unpriced or cancelled: the call never starts
            for held in (hold, *(other[1] for other in others)):
                meter.release(held)  # what was held goes back
            raise
        if room >= wanted:
            return BudgetedCall(request, hold, others=tuple(others))
        capped = request.model_copy(update={"max_tokens": room - prompt})
        stop = BudgetExceeded(limit, meter.retry_after(limit), budget=_kind(kind))
        return BudgetedCall(capped, hold, stop, tuple(others))

    async def _hold_cost(
        self,
        request: LLMRequest,
        prompt: int,
        room: int,
        others: list[tuple[str, Hold, ModelPrice | None]],
    ) -> tuple[int, str]:
        """Hold the call's worst cost; (the room it leaves, the window when that is less)."""
        model = request.model or self.default_model
        price = self.prices.get(model)
        if price is None:
            raise UnpricedModel(model)
        if not (price.prompt or price.completion):
            return room, ""  # free: nothing to hold

        def cost(tokens: int) -> int:  # micro-USD: USD per million tokens = micro-USD a token
            return math.ceil(prompt * price.prompt + (tokens - prompt) * price.completion)

        holder = f"usd:{self.principal_id}"
        held = await self.meter.hold(
            holder, cost(room), least=cost(prompt + 1), budgets=self.cost, budget="cost"
        )
        others.append((holder, held, price))
        if not held.tokens or held.tokens >= cost(room) or not price.completion:
            return room, ""
        affordable = prompt + int((held.tokens - prompt * price.prompt) // price.completion)
        return min(room, affordable), self.cost.window

    def settle(self, call: BudgetedCall, *, model: str, usage: Usage, cached: bool) -> None:
        """After the call, answered or not (no answer: zero usage, the holds just end)."""
        meter = self.meter
        meter.settle(
            self.principal_id, self.agent, model=model, usage=usage, cached=cached, hold=call.hold
        )
        tokens = 0 if cached else usage.prompt_tokens + usage.completion_tokens
        for holder, held, price in call.others:
            spent = tokens
            if price is not None:
                spent = (
                    0
                    if cached
                    else math.ceil(
                        usage.prompt_tokens * price.prompt
                        + usage.completion_tokens * price.completion
                    )
                )
            meter.settle_spend(holder, spent=spent, hold=held)


def for_run(
    meter: UsageMeter,
    principal_id: str,
    agent: str,
    limits: PrincipalLimits,
    *,
    prices: dict[str, ModelPrice],
    default_model: str,
) -> CallBudget:
    """The budgets of one run of ``principal_id`` (its tenant's policy, else the settings)."""
    return CallBudget(
        meter,
        principal_id,
        agent,
        budgets=limits.budgets,
        run_budget=limits.run_budget,
        pool=limits.pool,
        pool_holder=limits.pool_holder,
        cost=limits.cost,
        prices=prices,
        default_model=default_model,
    )


async def check_budgets(meter: UsageMeter, principal_id: str, limits: PrincipalLimits) -> None:
    """429 ``budget_exhausted`` while the principal's tokens or cost, or its tenant's pool,
    are spent: the gate for new runs and tasks."""
    await meter.check(principal_id, limits.budgets)
    if limits.pool.any:
        await meter.check(limits.pool_holder, limits.pool, budget="tenant")
    if limits.cost.any:
        await meter.check(f"usd:{principal_id}", limits.cost, budget="cost")


def _kind(kind: str) -> BudgetKind:
    return "tenant" if kind == "tenant" else "cost" if kind == "cost" else "principal"

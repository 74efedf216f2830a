"""Bodies of the usage routes (GET /v1/usage, GET /v1/usage/budget)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

GroupBy = Literal["day", "agent", "model", "cached", "principal", "tenant"]


class UsageItem(BaseModel):
    day: date | None = None
    agent: str | None = None
    model: str | None = None
    cached: bool | None = Field(None, description="Answered from the LLM cache (no upstream cost).")
    principal: str | None = None
    tenant: str | None = Field(None, description="The principals' tenant (group_by=tenant).")
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    billable_tokens: int = Field(description="Tokens of calls the cache did not answer.")
    cost_usd: float | None = Field(
        None,
        description="What the billable tokens cost at MODEL_PRICES; null when a model in the "
        "group has no price.",
    )


class UsageReport(BaseModel):
    from_: date = Field(alias="from")
    to: date
    group_by: list[GroupBy]
    items: list[UsageItem] = Field(description="One per group, largest total first.")
    total: UsageItem = Field(description="Everything in the range, all groups together.")

    model_config = {"populate_by_name": True}


class WindowBudget(BaseModel):
    limit: int = Field(description="Tokens allowed in the window; 0 = no budget.")
    spent: int = Field(description="Billable tokens of the calls that ended.")
    held: int = Field(description="Tokens held by calls in flight (their usage replaces it).")
    remaining: int | None = Field(description="What is left; null without a budget.")
    reset_at: datetime = Field(description="When the window ends (UTC).")


class CostWindow(BaseModel):
    limit_usd: float = Field(description="US dollars allowed in the window; 0 = no budget.")
    spent_usd: float = Field(description="What the calls that ended cost (MODEL_PRICES).")
    held_usd: float = Field(description="The worst cost of calls in flight.")
    remaining_usd: float | None = Field(description="What is left; null without a budget.")
    reset_at: datetime


class CostBudget(BaseModel):
    day: CostWindow
    month: CostWindow


class PoolBudget(BaseModel):
    tenant: str
    day: WindowBudget
    month: WindowBudget


class BudgetReport(BaseModel):
    principal: str
    run_limit: int = Field(description="BUDGET_TOKENS_PER_RUN: tokens one run may use; 0 = none.")
    day: WindowBudget
    month: WindowBudget
    cost: CostBudget | None = Field(
        None,
        description="The caller's cost budgets (BUDGET_USD_PER_DAY, _PER_MONTH or its tenant's "
        "policy), priced by MODEL_PRICES; null when it has none.",
    )
    tenant_pool: PoolBudget | None = Field(
        None,
        description="The caller's tenant's pool (pool_tokens_per_day, _per_month of its "
        "policy), shared by all its principals; null when it has none.",
    )

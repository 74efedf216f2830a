"""Settings of token budgets and the usage ledger (app/store/usage_ledger.py): how many model
tokens a principal may spend per UTC day and month, and one run at most. A group of its own,
mixed into Settings (app/core/config.py) like the run group. 0 = no budget."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode


class ModelPrice(BaseModel):
    """US dollars per million tokens of one model (what the provider charges)."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1_000_000


def micro_usd(dollars: float) -> int:
    """Cost budgets are kept in the ledger as whole millionths of a dollar (the RESERVE
    script counts integers). A price in USD per million tokens is micro-USD per token."""
    return round(dollars * 1_000_000)


class BudgetSettings(BaseModel):
    # --- Token budgets and usage -------------------------------------------------------------
    BUDGET_TOKENS_PER_RUN: int = Field(
        0,
        ge=0,
        description="Model tokens (prompt + completion) one run may use; a run that reaches it "
        "stops with status incomplete (budget_exceeded), keeping what it produced. 0 = none.",
    )
    BUDGET_TOKENS_PER_DAY: int = Field(
        0,
        ge=0,
        description="Model tokens one principal may use per UTC day, across runs, tasks and "
        "replicas (answers from the LLM cache are free). Reached: new runs get 429 "
        "budget_exhausted until the reset, running ones stop incomplete. 0 = none.",
    )
    BUDGET_TOKENS_PER_MONTH: int = Field(
        0, ge=0, description="The same per UTC calendar month. 0 = none."
    )
    BUDGET_USD_PER_DAY: float = Field(
        0.0,
        ge=0,
        description="US dollars of model calls one principal may spend per UTC day, priced by "
        "MODEL_PRICES (a model without a price cannot be called under it: the run fails, "
        "model_unpriced), held and enforced like the token budgets. 0 = none.",
    )
    BUDGET_USD_PER_MONTH: float = Field(
        0.0, ge=0, description="The same per UTC calendar month. 0 = none."
    )
    BUDGET_RESERVE_TOKENS: int = Field(
        1024,
        ge=1,
        description="Tokens held for a model call while it runs when the request sets no "
        "max_tokens (its max_tokens otherwise), so concurrent calls cannot overspend a budget "
        "together; the call's real usage replaces the hold when it ends.",
    )
    USAGE_RETENTION_DAYS: int = Field(
        400, ge=1, le=3660, description="Days the usage ledger (GET /v1/usage) keeps."
    )
    MODEL_PRICES: Annotated[dict[str, ModelPrice], NoDecode] = Field(
        default_factory=dict,
        description="Prices per model in US dollars per million tokens, JSON like "
        '{"gpt-4o": {"prompt": 2.5, "completion": 10.0}}: GET /v1/usage reports cost_usd '
        "for them (answers from the LLM cache cost nothing). Unset: no cost figures.",
    )

    @field_validator("MODEL_PRICES", mode="before")
    @classmethod
    def _parse_prices(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

"""Token usage and budgets: what a principal's runs and tasks used, from the usage ledger
(app/agents/usage.py). Any principal reads its own; `admin` reads anyone's, or everyone's
(`principal=*`); a `tenant:admin` those of its own tenant."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import PrincipalDep, RunServiceDep, SettingsDep
from app.api.responses import ProblemDoc, problems
from app.api.schemas.usage import (
    BudgetReport,
    CostBudget,
    CostWindow,
    GroupBy,
    PoolBudget,
    UsageItem,
    UsageReport,
    WindowBudget,
)
from app.core.budget_settings import ModelPrice
from app.core.clock import utcnow
from app.core.errors import Forbidden, Unprocessable
from app.core.tenancy import DEFAULT_TENANT, tenant_of
from app.security.scopes import Scope
from app.store.usage_ledger import Spend, UsageRow, Window, resets_at

router = APIRouter(prefix="/usage", tags=["usage"])

MAX_DAYS = 366
USAGE_UNPROCESSABLE = ProblemDoc(
    "A bad range: `to` before `from`, or longer than 366 days; or an unknown `group_by`.",
    (("validation_error", "The range is longer than 366 days."),),
)
USAGE_FORBIDDEN = ProblemDoc(
    "Another principal's usage, without the `admin` scope.",
    (("insufficient_scope", "Reading another principal's usage needs admin."),),
)


@router.get(
    "",
    response_model=UsageReport,
    response_model_by_alias=True,
    responses=problems(401, docs={403: USAGE_FORBIDDEN, 422: USAGE_UNPROCESSABLE}),
    summary="Token usage, grouped",
)
async def usage(
    principal: PrincipalDep,
    runs: RunServiceDep,
    settings: SettingsDep,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    group_by: Annotated[list[GroupBy] | None, Query()] = None,
    of: Annotated[str | None, Query(alias="principal", max_length=300)] = None,
) -> UsageReport:
    """Model tokens by UTC day (`from`, `to`: dates, default today; at most 366 days),
    grouped by any of `day`, `agent`, `model`, `cached`, `principal`, `tenant` (repeat
    `group_by`; default day, agent, model). Calls answered from the LLM cache are counted apart
    (`cached`) and are not billable. The caller's own usage; with `admin`, `principal=<id>`
    for another's or `principal=*` for everyone's (`tenant:admin`: within its tenant). Usage
    reaches the ledger within a second of each call."""
    last = to or utcnow().date()
    first = from_ or last
    if last < first or (last - first).days >= MAX_DAYS:
        raise Unprocessable(f"`from` must be on or before `to`, at most {MAX_DAYS} days apart.")
    who = principal.id if of is None else of
    tenant_wide = principal.has_scopes({Scope.TENANT_ADMIN}) and principal.tenant != DEFAULT_TENANT
    if who != principal.id and not principal.has_scopes({Scope.ADMIN}):
        # A tenant:admin reads the principals of its own tenant (`*`: all of them).
        if not tenant_wide or (who != "*" and tenant_of(who) != principal.tenant):
            raise Forbidden(
                "Reading another principal's usage needs admin (or tenant:admin, within "
                "its own tenant).",
                code="insufficient_scope",
            )
    rows = await runs.meter.ledger.rows(None if who == "*" else [who], first, last)
    if who == "*" and not principal.has_scopes({Scope.ADMIN}):
        rows = [row for row in rows if tenant_of(row.principal) == principal.tenant]
    default: list[GroupBy] = ["day", "agent", "model"]
    groups = list(dict.fromkeys(group_by or default))
    prices = settings.MODEL_PRICES
    items = _grouped(rows, groups, prices)
    return UsageReport(
        from_=first,
        to=last,
        group_by=groups,
        items=sorted(items, key=lambda i: (-i.total_tokens, str(i.day), i.agent or "")),
        total=_grouped(rows, [], prices)[0] if rows else _item({}, _Sums()),
    )


class _Sums:
    __slots__ = ("billable", "calls", "completion", "cost", "prompt")

    def __init__(self) -> None:
        self.calls = self.prompt = self.completion = self.billable = 0
        self.cost: float | None = 0.0  # None once a model without a price is in


def _grouped(
    rows: list[UsageRow], groups: list[GroupBy], prices: dict[str, ModelPrice]
) -> list[UsageItem]:
    sums: dict[tuple[object, ...], _Sums] = defaultdict(_Sums)
    for row in rows:
        totals = sums[tuple(_group_of(row, group) for group in groups)]
        totals.calls += row.calls
        totals.prompt += row.prompt_tokens
        totals.completion += row.completion_tokens
        if row.cached:
            continue  # nothing paid upstream
        totals.billable += row.prompt_tokens + row.completion_tokens
        price = prices.get(row.model)
        if price is None or totals.cost is None:
            totals.cost = None
        else:
            totals.cost += price.cost(row.prompt_tokens, row.completion_tokens)
    return [_item(dict(zip(groups, key, strict=True)), totals) for key, totals in sums.items()]


def _group_of(row: UsageRow, group: GroupBy) -> object:
    return tenant_of(row.principal) if group == "tenant" else getattr(row, group)


def _item(fields: dict[str, object], totals: _Sums) -> UsageItem:
    return UsageItem.model_validate(
        {
            **fields,
            "calls": totals.calls,
            "prompt_tokens": totals.prompt,
            "completion_tokens": totals.completion,
            "total_tokens": totals.prompt + totals.completion,
            "billable_tokens": totals.billable,
            "cost_usd": None if totals.cost is None else round(totals.cost, 6),
        }
    )


@router.get(
    "/budget",
    response_model=BudgetReport,
    responses=problems(401),
    summary="The caller's token budgets and what is left",
)
async def budget(principal: PrincipalDep, runs: RunServiceDep) -> BudgetReport:
    """The caller's day and month budgets (BUDGET_TOKENS_PER_DAY, _PER_MONTH, or its
    tenant's policy: 0 = none), what its runs and tasks spent of them (billable tokens), what
    calls in flight hold, what is left and when each window resets; the per-run budget; its
    cost budgets in US dollars (BUDGET_USD_*), and its tenant's shared pool, when set."""
    meter = runs.meter
    now = utcnow()
    limits = await runs.limits.of(principal.tenant)  # its tenant's policy, else the settings
    spend = await meter.ledger.spent(principal.id, now)
    pool = None
    if limits.pool.any:
        pooled = await meter.ledger.spent(limits.pool_holder, now)
        pool = PoolBudget(
            tenant=principal.tenant,
            day=_window(limits.pool.per_day, pooled, "day", now),
            month=_window(limits.pool.per_month, pooled, "month", now),
        )
    cost = None
    if limits.cost.any:
        priced = await meter.ledger.spent(f"usd:{principal.id}", now)
        cost = CostBudget(
            day=_in_dollars(_window(limits.cost.per_day, priced, "day", now)),
            month=_in_dollars(_window(limits.cost.per_month, priced, "month", now)),
        )
    return BudgetReport(
        principal=principal.id,
        run_limit=limits.run_budget,
        day=_window(limits.budgets.per_day, spend, "day", now),
        month=_window(limits.budgets.per_month, spend, "month", now),
        cost=cost,
        tenant_pool=pool,
    )


def _in_dollars(window: WindowBudget) -> CostWindow:
    """A cost window: the ledger keeps whole micro-USD."""
    return CostWindow(
        limit_usd=window.limit / 1e6,
        spent_usd=window.spent / 1e6,
        held_usd=window.held / 1e6,
        remaining_usd=None if window.remaining is None else window.remaining / 1e6,
        reset_at=window.reset_at,
    )


def _window(limit: int, spend: Spend, name: Window, now: datetime) -> WindowBudget:
    spent = spend.day if name == "day" else spend.month
    held = spend.held_day if name == "day" else spend.held_month
    remaining = max(limit - spent - held, 0) if limit else None
    if remaining is not None and name in spend.closed:
        remaining = 0  # too little left for a call
    return WindowBudget(
        limit=limit, spent=spent, held=held, remaining=remaining, reset_at=resets_at(name, now)
    )

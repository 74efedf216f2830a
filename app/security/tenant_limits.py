"""What applies to one principal: its tenant's policy over the deployment's settings.

Read by the run and task services (allowed agents, caps, budgets) and the rate-limit
middleware (the tenant's default request limit; RATE_LIMIT_ROUTES still win per route).

The default tenant has no record and follows the settings (computed once). Another tenant's
limits come from its record in the tenant directory (a per-process cache,
app/security/tenants.py) and are rebuilt only when that record changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, parse

from app.core.budget_settings import micro_usd
from app.core.config import Settings
from app.security.principals import DEFAULT_TENANT
from app.security.tenants import TenantDirectory
from app.store.records import TenantPolicy, TenantRecord
from app.store.usage_ledger import Budgets

N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class PrincipalLimits:
    allowed_agents: frozenset[str] | None  # None: every agent the deployment serves
    max_concurrent_runs: int  # 0 = none
    max_active_tasks: int  # 0 = none
    budgets: Budgets  # each principal's
    run_budget: int  # tokens per run, 0 = none
    cost: Budgets  # each principal's, in micro-USD (app/core/budget_settings.py micro_usd)
    pool: Budgets  # the whole tenant's, shared by its principals (none in the default tenant)
    pool_holder: str  # its key in the usage ledger: ``tenant:<id>``
    rate_limit: RateLimitItem | None  # None: RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW

    def allows(self, agent: str) -> bool:
        return self.allowed_agents is None or agent in self.allowed_agents


def _pick(own: N | None, setting: N) -> N:
    """The tenant's own value, else the deployment's setting."""
    return setting if own is None else own


def limits_for(
    settings: Settings, policy: TenantPolicy, tenant: str = DEFAULT_TENANT
) -> PrincipalLimits:
    allowed = policy.allowed_agents
    return PrincipalLimits(
        allowed_agents=frozenset(allowed) if allowed is not None else None,
        max_concurrent_runs=_pick(
            policy.max_concurrent_runs, settings.MAX_CONCURRENT_RUNS_PER_PRINCIPAL
        ),
        max_active_tasks=_pick(policy.max_active_tasks, settings.MAX_ACTIVE_TASKS_PER_PRINCIPAL),
        budgets=Budgets(
            per_day=_pick(policy.budget_tokens_per_day, settings.BUDGET_TOKENS_PER_DAY),
            per_month=_pick(policy.budget_tokens_per_month, settings.BUDGET_TOKENS_PER_MONTH),
        ),
        run_budget=_pick(policy.budget_tokens_per_run, settings.BUDGET_TOKENS_PER_RUN),
        cost=Budgets(
            per_day=micro_usd(_pick(policy.budget_usd_per_day, settings.BUDGET_USD_PER_DAY)),
            per_month=micro_usd(_pick(policy.budget_usd_per_month, settings.BUDGET_USD_PER_MONTH)),
        ),
        rate_limit=parse(policy.rate_limit) if policy.rate_limit else None,
        pool=Budgets(
            per_day=policy.pool_tokens_per_day or 0, per_month=policy.pool_tokens_per_month or 0
        ),
        pool_holder=f"tenant:{tenant}",
    )


NOTHING_ALLOWED = PrincipalLimits(
    allowed_agents=frozenset(),
    max_concurrent_runs=0,
    max_active_tasks=0,
    budgets=Budgets(),
    run_budget=0,
    rate_limit=None,
    cost=Budgets(),
    pool=Budgets(),
    pool_holder="",
)


class TenantLimits:
    def __init__(self, settings: Settings, directory: TenantDirectory) -> None:
        self._settings = settings
        self.directory = directory
        self.default = limits_for(settings, TenantPolicy())
        self._built: dict[str, tuple[TenantRecord, PrincipalLimits]] = {}

    async def of(self, tenant: str) -> PrincipalLimits:
        """The limits of ``tenant``'s principals. A tenant deleted meanwhile (its principals
        are refused at authentication) may run nothing: its queued tasks end at start."""
        if tenant == DEFAULT_TENANT:
            return self.default
        record = await self.directory.get(tenant)
        if record is None:
            return NOTHING_ALLOWED
        built = self._built.get(tenant)
        if built is None or built[0] is not record:
            built = (record, limits_for(self._settings, record.policy, tenant))
            self._built[tenant] = built
        return built[1]

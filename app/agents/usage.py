"""Token budgets and the usage ledger, from a run's side: one meter per process.

Before each model call a run holds tokens of its principal's budgets (``hold``; only when a
day or month budget is set), borrowed from this process's chunk of them
(app/agents/budget_chunks.py), so a Redis round trip only when the chunk runs out. Its real
usage is recorded when the call ends (``settle``), batched with every other call's into one
ledger write every FLUSH_SECONDS, with the chunks that ended. A call the budgets cannot
hold ends the run: ``BudgetExceeded`` (status ``incomplete``, code ``budget_exceeded``, what
the run produced so far kept). New runs are refused before they start while a budget is
spent (``check``: 429 ``budget_exhausted`` with the reset time). Answers from the LLM cache
are recorded but cost no budget (nothing was paid upstream).

A ledger that cannot be reached (Redis down) never stops a run: the budget is not checked
then (logged, ``budget_checks_failed_total``), and the usage of a write that failed is lost
from the ledger only (the runs' own records keep theirs).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Literal

import structlog

from app.agents import metrics
from app.agents.budget_chunks import ChunkPool, chunk_size
from app.agents.errors import RunFailure
from app.core.clock import utcnow
from app.core.errors import AppError
from app.core.lifecycle import raise_if_cancelling
from app.llm.types import ChatMessage, Usage
from app.store.usage_ledger import (
    Budgets,
    Hold,
    Settlement,
    Spend,
    UsageLedger,
    UsageRow,
    Window,
    day_key,
    month_key,
    resets_at,
)

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 0.2
CHECK_SECONDS = 1.0
CHECKED_MAX = 10_000
HOLD_WAIT_SECONDS = 10.0  # a call waits this long for budget held by calls in flight
WINDOWS: tuple[tuple[Window, Callable[[datetime], str]], ...] = (
    ("day", day_key),
    ("month", month_key),
)


class BudgetExceeded(RunFailure):
    """A model call the budgets cannot hold: the run stops, ``incomplete``."""

    code = "budget_exceeded"

    def __init__(
        self, window: Window | str, retry_after: float | None, *, budget: BudgetKind = "principal"
    ) -> None:
        name = ADJECTIVE.get(window, f"per-{window}")
        what = {"principal": "token", "tenant": "tenant's token", "cost": "cost"}[budget]
        super().__init__(f"The {name} {what} budget is spent; the run stopped at it.")
        self.window = window
        self.retry_after = retry_after


class UnpricedModel(RunFailure):
    """A cost budget applies and the model has no price: nothing can hold its calls (an
    operator's omission, answered 503 ``model_unpriced``; the run fails)."""

    code = "model_unpriced"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model {model!r} has no price in MODEL_PRICES: a cost budget cannot hold its "
            "calls, so the run stopped."
        )


ADJECTIVE = {"day": "daily", "month": "monthly"}
# Whose budget: the principal's tokens, its tenant's pool of tokens, its cost (micro-USD).
BudgetKind = Literal["principal", "tenant", "cost"]


class BudgetExhausted(AppError):
    status, code = 429, "budget_exhausted"

    def __init__(
        self,
        window: Window,
        *,
        limit: int,
        spent: int,
        reset: datetime,
        budget: BudgetKind = "principal",
    ) -> None:
        wait = max(1, math.ceil((reset - utcnow()).total_seconds()))
        at = reset.isoformat()
        extensions: dict[str, object] = {"window": window, "reset_at": at, "budget": budget}
        if budget == "cost":  # kept in micro-USD, told in dollars
            amount = f"cost budget (${limit / 1_000_000:,.2f})"
            extensions |= {"limit_usd": limit / 1_000_000, "spent_usd": spent / 1_000_000}
        else:
            whose = "tenant's " if budget == "tenant" else ""
            amount = f"{whose}token budget ({limit:,} tokens)"
            extensions |= {"limit": limit, "spent": spent}
        super().__init__(
            f"The {ADJECTIVE[window]} {amount} is spent; it resets at {at}.",
            headers={"Retry-After": str(wait)},
            extensions=extensions,
        )


def estimate_prompt_tokens(messages: list[ChatMessage]) -> int:
    """A generous guess of a prompt's tokens before the call (about four characters a token,
    and a few per message), for the hold; the call's reported usage replaces it."""
    return sum(len(message.content or "") // 4 + 4 for message in messages) + 1


class UsageMeter:
    def __init__(
        self,
        ledger: UsageLedger,
        *,
        budgets: Budgets,
        reserve_tokens: int,
        retention_days: int,
        lease_seconds: float,
    ) -> None:
        self.ledger = ledger
        self.budgets = budgets
        self.reserve_tokens = reserve_tokens  # a call's completion when it sets no max_tokens
        self._retention = retention_days
        self._lease = lease_seconds  # a hold outlives no call: a dead process's ends with it
        self._pending = Settlement()
        self._rows: dict[tuple[str, date, str, str, bool], UsageRow] = {}  # the batch's rows
        self._flusher: asyncio.Task[None] | None = None
        self._checked: dict[str, tuple[float, Spend]] = {}  # principal -> (read at, spend)
        self._pool = ChunkPool(lease_seconds=lease_seconds)

    async def check(
        self, principal: str, budgets: Budgets | None = None, *, budget: BudgetKind = "principal"
    ) -> None:
        """Before a run starts: 429 ``budget_exhausted`` while a budget is spent. Read at
        most every CHECK_SECONDS per principal and process (a gate for new runs only: every
        model call is held exactly). ``budgets``: the principal's own (its tenant's policy),
        else the deployment's. ``budget``: what ``principal`` holds: a principal's tokens, a
        tenant's pool (``tenant:<id>``) or a principal's cost (``usd:<principal>``)."""
        budgets = budgets or self.budgets
        if not budgets.any:
            return
        now = utcnow()
        spend = self._checked.get(principal)
        if spend is None or time.monotonic() - spend[0] > CHECK_SECONDS:
            try:
                spend = (time.monotonic(), await self.ledger.spent(principal, now))
            except Exception as exc:
                raise_if_cancelling()
                self._unchecked(exc)
                return
            if len(self._checked) >= CHECKED_MAX:
                self._checked.clear()
            self._checked[principal] = spend
        windows: tuple[tuple[Window, int], ...] = (
            ("day", budgets.per_day),
            ("month", budgets.per_month),
        )
        for window, limit in windows:
            if spend[1].used_up(window, limit):
                metrics.BUDGET_REJECTIONS.labels(window).inc()
                spent = spend[1].day if window == "day" else spend[1].month
                raise BudgetExhausted(
                    window, limit=limit, spent=spent, reset=resets_at(window, now), budget=budget
                )

    async def hold(
        self,
        principal: str,
        amount: int,
        *,
        least: int,
        budgets: Budgets | None = None,
        budget: BudgetKind = "principal",
    ) -> Hold:
        """Before a model call: hold up to ``amount`` tokens of the principal's budgets, at
        least ``least`` (its prompt and one token), or raise BudgetExceeded. Borrowed from
        this process's chunk of the budgets when it has room (no round trip), else a new
        chunk is held in Redis. While calls in flight hold what is left, wait for them (up
        to HOLD_WAIT_SECONDS)."""
        budgets = budgets or self.budgets
        if not budgets.any:
            return Hold(0, utcnow())
        lent = self._pool.lend(principal, amount, least)
        if lent is not None:
            return lent
        deadline = time.monotonic() + HOLD_WAIT_SECONDS
        pause = 0.05
        while True:
            now = utcnow()
            try:
                reservation = await self.ledger.reserve(
                    principal,
                    chunk_size(budgets, amount),
                    least=least,
                    budgets=budgets,
                    at=now,
                    lease_seconds=self._lease * 2,  # its calls end before (ChunkPool)
                )
            except Exception as exc:
                raise_if_cancelling()
                self._unchecked(exc)
                return Hold(0, now)
            if reservation.hold.tokens:
                self._pool.add(principal, reservation.hold)
                self._keep_flushing()
                return self._pool.lend(principal, amount, least, fresh=True) or Hold(0, now)
            if reservation.lasting or time.monotonic() + pause > deadline:
                break
            self._keep_flushing()  # this process's own idle chunks end too
            await asyncio.sleep(pause)  # held by calls in flight: they end soon
            pause = min(pause * 2, 1.0)
        window = await self._spent_window(principal, now, least, budgets)
        if reservation.lasting:  # what is left is too small for a call: so for new runs too
            await self.ledger.close(principal, window, now)
            self._checked.pop(principal, None)  # this process's next check reads it
        metrics.BUDGET_REJECTIONS.labels(window).inc()
        wait = (resets_at(window, now) - now).total_seconds()
        raise BudgetExceeded(window, wait, budget=budget)

    async def _spent_window(
        self, principal: str, now: datetime, least: int, budgets: Budgets
    ) -> Window:
        try:
            spend = await self.ledger.spent(principal, now)
        except Exception as exc:
            raise_if_cancelling()
            self._unchecked(exc)
            return budgets.window
        per_day = budgets.per_day
        if per_day and per_day - spend.day - spend.held_day < least:
            return "day"
        return "month" if budgets.per_month else "day"

    def settle(
        self,
        principal: str,
        agent: str,
        *,
        model: str,
        usage: Usage,
        cached: bool,
        hold: Hold,
    ) -> None:
        """After a model call (or one that failed: zero usage, the hold just ends): its
        spend and the end of its hold go with the next batch (until then the hold counts in
        its place, so a budget can only look fuller than it is, never emptier)."""
        self.record(principal, agent, model, usage, cached)
        if hold.tokens:
            self._pool.give_back(
                hold, 0 if cached else usage.prompt_tokens + usage.completion_tokens
            )

    def settle_spend(self, holder: str, *, spent: int, hold: Hold) -> None:
        """A call's spend against another holder's windows (a tenant's pool ``tenant:<id>``
        in tokens, a principal's cost ``usd:<principal>`` in micro-USD): no usage row (those
        are the principal's), that holder's windows only."""
        self._add_spend(holder, spent, utcnow())
        if hold.tokens:
            self._pool.give_back(hold, spent)
        self._keep_flushing()

    def release(self, hold: Hold) -> None:
        """A hold whose call never started (another budget refused it)."""
        if hold.tokens:
            self._pool.give_back(hold, 0)

    def record(self, principal: str, agent: str, model: str, usage: Usage, cached: bool) -> None:
        """A call that held nothing (no budget, or a framework's own client): batched."""
        now = utcnow()
        self._row(principal, agent, model, usage, cached, now)
        billable = 0 if cached else usage.prompt_tokens + usage.completion_tokens
        self._add_spend(principal, billable, now)
        metrics.count_usage(principal, agent, usage, cached)

    def _add_spend(self, holder: str, billable: int, now: datetime) -> None:
        for key, delta in self._spend(holder, billable, now).items():
            self._pending.spend[key] = self._pending.spend.get(key, 0) + delta

    def _row(
        self, principal: str, agent: str, model: str, usage: Usage, cached: bool, now: datetime
    ) -> None:
        if usage.prompt_tokens or usage.completion_tokens or not cached:
            # Summed here: a batch writes one row per principal, day, agent, model and cache
            # status, however many calls it holds.
            day = now.date()
            row = self._rows.get((principal, day, agent, model, cached))
            if row is None:
                row = UsageRow(principal, day, agent, model, cached)
                self._rows[(principal, day, agent, model, cached)] = row
                self._pending.rows.append(row)
            row.calls += 1
            row.prompt_tokens += usage.prompt_tokens
            row.completion_tokens += usage.completion_tokens
        self._keep_flushing()

    def _keep_flushing(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_soon(), name="usage-ledger-writer")

    @staticmethod
    def _spend(principal: str, billable: int, now: datetime) -> dict[tuple[str, Window, str], int]:
        if not billable:
            return {}
        return {(principal, window, period_of(now)): billable for window, period_of in WINDOWS}

    async def _flush_soon(self) -> None:
        """Every FLUSH_SECONDS while anything is pending or a chunk is held."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self.flush()
                pending = self._pending
                if not (pending.rows or pending.spend or self._pool):
                    return
        finally:
            self._flusher = None

    async def flush(self, *, everything: bool = False) -> None:
        """Write what the calls since the last flush used, and end the chunks that are done
        (``everything``: every chunk, at shutdown)."""
        settlement, self._pending = self._pending, Settlement()
        self._rows = {}
        settlement.ended += self._pool.ended(everything=everything)
        await self._write(settlement)

    async def _write(self, settlement: Settlement) -> None:
        if not (settlement.rows or settlement.spend or settlement.ended):
            return
        try:
            await self.ledger.write(settlement, self._retention)
        except Exception as exc:
            raise_if_cancelling()
            metrics.USAGE_WRITE_FAILURES.inc()
            log.warning("usage_ledger_write_failed", error=type(exc).__name__)

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self.flush(everything=True)

    def retry_after(self, window: str) -> float | None:
        """Seconds until a day or month budget resets (None for a run's)."""
        if window not in ("day", "month"):
            return None
        now = utcnow()
        return (resets_at("day" if window == "day" else "month", now) - now).total_seconds()

    def _unchecked(self, exc: Exception) -> None:
        metrics.BUDGET_CHECK_FAILURES.inc()
        log.warning("budget_check_failed", error=type(exc).__name__)

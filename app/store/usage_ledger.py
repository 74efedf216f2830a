"""The usage ledger: model tokens per principal, UTC day, agent, model and cache status, and
each principal's spend against its token budgets (interface + memory; Redis:
app/store/usage_ledger_redis.py).

Spend counts billable tokens only (prompt + completion of calls the LLM cache did not
answer). Concurrent calls of one principal cannot overspend a budget together: a call holds
its tokens first (``reserve``: its prompt and max_tokens, or what is left when that is less)
and is capped at what it holds; a hold is taken only while spend + live holds stays within
every budget, and ends with the call (``write`` adds the call's usage and drops its hold) or,
if its process died, with its lease. So what is spent never passes a budget by more than the
error of one call's prompt estimate.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol

Window = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Budgets:
    per_day: int = 0  # 0 = none
    per_month: int = 0

    @property
    def any(self) -> bool:
        return bool(self.per_day or self.per_month)

    @property
    def window(self) -> Window:
        """The window named when a hold falls short (the day's when both are set)."""
        return "day" if self.per_day else "month"


@dataclass(frozen=True, slots=True)
class Spend:
    day: int  # billable tokens of calls that ended
    month: int
    closed: frozenset[Window] = frozenset()  # windows whose rest is too small for any call
    held_day: int = 0  # held by calls in flight
    held_month: int = 0

    def used_up(self, window: Window, limit: int) -> bool:
        spent = self.day if window == "day" else self.month
        return bool(limit) and (spent >= limit or window in self.closed)


@dataclass(slots=True)
class UsageRow:
    """Tokens of one principal on one day through one agent and model, cached or not."""

    principal: str
    day: date
    agent: str
    model: str
    cached: bool
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """Tokens a call holds in its principal's budgets while it runs (0: nothing held)."""

    tokens: int
    at: datetime
    principal: str = ""
    id: str = ""


@dataclass(frozen=True, slots=True)
class Reservation:
    hold: Hold  # tokens 0: refused
    lasting: bool  # refused because a budget is spent (not only held by calls in flight)


@dataclass(slots=True)
class Settlement:
    """What one write does: ledger rows to add, spend to add (billable tokens), holds to end."""

    rows: builtins.list[UsageRow] = field(default_factory=list)
    spend: dict[tuple[str, Window, str], int] = field(default_factory=dict)  # (p, w, period)
    ended: builtins.list[Hold] = field(default_factory=list)


def day_key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def month_key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def resets_at(window: Window, at: datetime) -> datetime:
    """When a budget window that holds ``at`` ends (UTC)."""
    start = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return start + timedelta(days=1)
    first = start.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


class UsageLedger(Protocol):
    async def reserve(
        self,
        principal: str,
        amount: int,
        *,
        least: int,
        budgets: Budgets,
        at: datetime,
        lease_seconds: float,
    ) -> Reservation:
        """Hold up to ``amount`` tokens of every budget, at least ``least``, for at most
        ``lease_seconds``; a refusal says whether a budget is spent or only held."""
        ...

    async def spent(self, principal: str, at: datetime) -> Spend: ...

    async def close(self, principal: str, window: Window, at: datetime) -> None:
        """Mark what is left of a window too small for a call: new runs are refused."""
        ...

    async def write(self, settlement: Settlement, retention_days: int) -> None: ...

    async def rows(
        self, principals: builtins.list[str] | None, first: date, last: date
    ) -> builtins.list[UsageRow]:
        """Rows of the days ``first`` to ``last``, of these principals (None: everyone)."""
        ...


def periods(at: datetime) -> tuple[tuple[Window, str], tuple[Window, str]]:
    """The day and the month ``at`` falls in, as budget windows name them."""
    return ("day", day_key(at)), ("month", month_key(at))


class MemoryUsageLedger:
    def __init__(self) -> None:
        self._spend: dict[tuple[str, Window, str], int] = defaultdict(int)
        self._holds: dict[tuple[str, Window, str], dict[str, tuple[int, float]]] = defaultdict(dict)
        self._closed: set[tuple[str, Window, str]] = set()
        self._rows: dict[tuple[str, date, str, str, bool], UsageRow] = {}

    def _held(self, key: tuple[str, Window, str]) -> int:
        now = time.monotonic()
        live = {i: h for i, h in self._holds[key].items() if h[1] > now}
        self._holds[key] = live
        return sum(tokens for tokens, _ in live.values())

    async def reserve(
        self,
        principal: str,
        amount: int,
        *,
        least: int,
        budgets: Budgets,
        at: datetime,
        lease_seconds: float,
    ) -> Reservation:
        held, lasting = amount, False
        limits = (budgets.per_day, budgets.per_month)
        keys = [(principal, window, period) for window, period in periods(at)]
        for key, limit in zip(keys, limits, strict=True):
            if limit:
                lasting = lasting or limit - self._spend[key] < least
                held = min(held, limit - self._spend[key] - self._held(key))
        if held < least:
            return Reservation(Hold(0, at), lasting)
        hold = Hold(held, at, principal, uuid.uuid4().hex)
        for key, limit in zip(keys, limits, strict=True):
            if limit:
                self._holds[key][hold.id] = (held, time.monotonic() + lease_seconds)
        return Reservation(hold, False)

    async def spent(self, principal: str, at: datetime) -> Spend:
        days: tuple[str, Window, str] = (principal, "day", day_key(at))
        months: tuple[str, Window, str] = (principal, "month", month_key(at))
        return Spend(
            day=self._spend.get(days, 0),
            month=self._spend.get(months, 0),
            closed=frozenset(w for w, p in periods(at) if (principal, w, p) in self._closed),
            held_day=self._held(days),
            held_month=self._held(months),
        )

    async def close(self, principal: str, window: Window, at: datetime) -> None:
        period = day_key(at) if window == "day" else month_key(at)
        self._closed.add((principal, window, period))

    async def write(self, settlement: Settlement, retention_days: int) -> None:
        for key, delta in settlement.spend.items():
            self._spend[key] += delta
        for hold in settlement.ended:
            for window, period in periods(hold.at):
                self._holds[(hold.principal, window, period)].pop(hold.id, None)
        for row in settlement.rows:
            index = (row.principal, row.day, row.agent, row.model, row.cached)
            kept = self._rows.setdefault(
                index, UsageRow(row.principal, row.day, row.agent, row.model, row.cached)
            )
            kept.calls += row.calls
            kept.prompt_tokens += row.prompt_tokens
            kept.completion_tokens += row.completion_tokens

    async def rows(
        self, principals: builtins.list[str] | None, first: date, last: date
    ) -> builtins.list[UsageRow]:
        wanted = None if principals is None else set(principals)
        return [
            row
            for row in self._rows.values()
            if first <= row.day <= last and (wanted is None or row.principal in wanted)
        ]

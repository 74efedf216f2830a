"""The usage ledger in Redis, shared by every replica and worker.

Layout (under the key prefix; one hash tag per principal, so a principal's spend keys share a
slot and RESERVE touches one):

``usage:{<principal>}:spend:day:<YYYY-MM-DD>``, ``...:spend:month:<YYYY-MM>``
    billable tokens of the calls that ended (strings, expiring a day and a month after their
    window ends)
``usage:{<principal>}:holds:day:<YYYY-MM-DD>``, ``...:holds:month:<YYYY-MM>``
    sorted sets of ``<hold id>:<tokens>`` held by calls in flight, scored by the hold's lease
    end (ms, Redis' clock): a process that died mid-call holds nothing after its lease
``usage:{<principal>}:closed:day:<YYYY-MM-DD>``, ``...:closed:month:<YYYY-MM>``
    set when what is left of the window is too small for a call: new runs are refused
``usage:{<principal>}:day:<YYYY-MM-DD>``
    hash: ``<agent>\\t<model>\\t<0|1 cached>\\t<n|p|c>`` -> calls, prompt, completion tokens
``usage:principals:<YYYY-MM-DD>``
    set: the principals with usage that day (for an admin's listing)

The last two expire USAGE_RETENTION_DAYS after the day.
"""

from __future__ import annotations

import builtins
import time
import uuid
from datetime import date, datetime, timedelta

from redis.asyncio import Redis

from app.store.keyspace import tag
from app.store.usage_ledger import (
    Budgets,
    Hold,
    Reservation,
    Settlement,
    Spend,
    UsageRow,
    Window,
    day_key,
    month_key,
)

DAY_TTL = 2 * 86_400
MONTH_TTL = 33 * 86_400
SEP = "\t"

# KEYS: day spend, month spend, day holds, month holds. ARGV: amount, least, day limit,
# month limit (0: none), lease ms, hold id, day TTL, month TTL. Holds the most it can up to
# the amount, within every budget (spend + live holds), at least `least`. Returns {held,
# lasting}: lasting = 1 when a budget's spend alone leaves less than `least`.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local spend, holds = {KEYS[1], KEYS[2]}, {KEYS[3], KEYS[4]}
local held, least = tonumber(ARGV[1]), tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local lasting = 0
for i = 1, 2 do
  if limits[i] > 0 then
    redis.call('ZREMRANGEBYSCORE', holds[i], '-inf', now)
    local holding = 0
    for _, member in ipairs(redis.call('ZRANGE', holds[i], 0, -1)) do
      holding = holding + tonumber(string.match(member, ':(%d+)$'))
    end
    local spent = tonumber(redis.call('GET', spend[i]) or '0')
    if limits[i] - spent < least then lasting = 1 end
    if limits[i] - spent - holding < held then held = limits[i] - spent - holding end
  end
end
if held < least then return {0, lasting} end
for i = 1, 2 do
  if limits[i] > 0 then
    redis.call('ZADD', holds[i], now + tonumber(ARGV[5]), ARGV[6] .. ':' .. held)
    redis.call('PEXPIRE', holds[i], tonumber(ARGV[6 + i]) * 1000)
  end
end
return {held, 0}
"""


def _live(holds: list[tuple[str, float]], now_ms: float) -> int:
    return sum(int(str(m).rsplit(":", 1)[1]) for m, until in holds if until > now_ms)


class RedisUsageLedger:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(RESERVE)

    def _spend_key(self, principal: str, window: Window, period: str) -> str:
        return f"{self._prefix}usage:{tag(principal)}:spend:{window}:{period}"

    def _day_key(self, principal: str, day: str) -> str:
        return f"{self._prefix}usage:{tag(principal)}:day:{day}"

    def _index_key(self, day: str) -> str:
        return f"{self._prefix}usage:principals:{day}"

    def _holds_key(self, principal: str, window: Window, period: str) -> str:
        return f"{self._prefix}usage:{tag(principal)}:holds:{window}:{period}"

    def _closed_key(self, principal: str, window: Window, period: str) -> str:
        return f"{self._prefix}usage:{tag(principal)}:closed:{window}:{period}"

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
        day, month = day_key(at), month_key(at)
        keys = [
            self._spend_key(principal, "day", day),
            self._spend_key(principal, "month", month),
            self._holds_key(principal, "day", day),
            self._holds_key(principal, "month", month),
        ]
        hold_id = uuid.uuid4().hex
        args: list[str | int] = [
            amount,
            least,
            budgets.per_day,
            budgets.per_month,
            int(lease_seconds * 1000),
            hold_id,
            DAY_TTL,
            MONTH_TTL,
        ]
        held, lasting = (int(v) for v in await self._reserve(keys=keys, args=args))
        if not held:
            return Reservation(Hold(0, at), bool(lasting))
        return Reservation(Hold(held, at, principal, hold_id), False)

    async def spent(self, principal: str, at: datetime) -> Spend:
        day, month = day_key(at), month_key(at)
        async with self._redis.pipeline(transaction=False) as pipe:  # a cluster refuses MGET here
            pipe.get(self._spend_key(principal, "day", day))
            pipe.get(self._spend_key(principal, "month", month))
            pipe.get(self._closed_key(principal, "day", day))
            pipe.get(self._closed_key(principal, "month", month))
            pipe.zrange(self._holds_key(principal, "day", day), 0, -1, withscores=True)
            pipe.zrange(self._holds_key(principal, "month", month), 0, -1, withscores=True)
            *values, day_holds, month_holds = await pipe.execute()
        windows: tuple[Window, Window] = ("day", "month")
        closed = frozenset(w for w, flag in zip(windows, values[2:], strict=True) if flag)
        now_ms = time.time() * 1000
        return Spend(
            day=int(values[0] or 0),
            month=int(values[1] or 0),
            closed=closed,
            held_day=_live(day_holds, now_ms),
            held_month=_live(month_holds, now_ms),
        )

    async def close(self, principal: str, window: Window, at: datetime) -> None:
        period = day_key(at) if window == "day" else month_key(at)
        ttl = DAY_TTL if window == "day" else MONTH_TTL
        await self._redis.set(self._closed_key(principal, window, period), "1", ex=ttl)

    async def write(self, settlement: Settlement, retention_days: int) -> None:
        ttl = retention_days * 86_400 + DAY_TTL
        async with self._redis.pipeline(transaction=False) as pipe:
            for (principal, window, period), delta in settlement.spend.items():
                key = self._spend_key(principal, window, period)
                pipe.incrby(key, delta)
                pipe.expire(key, DAY_TTL if window == "day" else MONTH_TTL)
            for hold in settlement.ended:
                member = f"{hold.id}:{hold.tokens}"
                pipe.zrem(self._holds_key(hold.principal, "day", day_key(hold.at)), member)
                pipe.zrem(self._holds_key(hold.principal, "month", month_key(hold.at)), member)
            for row in settlement.rows:
                day = row.day.isoformat()
                key = self._day_key(row.principal, day)
                field = SEP.join((row.agent, row.model, "1" if row.cached else "0"))
                pipe.hincrby(key, f"{field}{SEP}n", row.calls)
                pipe.hincrby(key, f"{field}{SEP}p", row.prompt_tokens)
                pipe.hincrby(key, f"{field}{SEP}c", row.completion_tokens)
                pipe.expire(key, ttl)
                pipe.sadd(self._index_key(day), row.principal)
                pipe.expire(self._index_key(day), ttl)
            await pipe.execute()

    async def rows(
        self, principals: builtins.list[str] | None, first: date, last: date
    ) -> builtins.list[UsageRow]:
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        wanted: list[tuple[str, date]] = []
        if principals is None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.smembers(self._index_key(day.isoformat()))
                members = await pipe.execute()
            for day, names in zip(days, members, strict=True):
                wanted += [(str(name), day) for name in sorted(names)]
        else:
            wanted = [(principal, day) for day in days for principal in principals]
        if not wanted:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for principal, day in wanted:
                pipe.hgetall(self._day_key(principal, day.isoformat()))
            hashes = await pipe.execute()
        rows: dict[tuple[str, date, str, str, bool], UsageRow] = {}
        for (principal, day), fields in zip(wanted, hashes, strict=True):
            for name, value in fields.items():
                agent, model, cached, kind = str(name).split(SEP)
                index = (principal, day, agent, model, cached == "1")
                row = rows.setdefault(index, UsageRow(principal, day, agent, model, cached == "1"))
                if kind == "n":
                    row.calls += int(value)
                elif kind == "p":
                    row.prompt_tokens += int(value)
                else:
                    row.completion_tokens += int(value)
        return list(rows.values())

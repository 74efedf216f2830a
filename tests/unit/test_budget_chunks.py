"""A process's chunk of a principal's budgets (app/agents/budget_chunks.py): calls borrow
from it without a round trip, give back what they did not use, and a chunk ends in Redis
only once its calls are back."""

from __future__ import annotations

from app.agents.budget_chunks import CHUNK_CALLS, ChunkPool, chunk_size
from app.core.clock import utcnow
from app.store.usage_ledger import Budgets, Hold


def _chunk(tokens: int, hold_id: str = "c1") -> Hold:
    return Hold(tokens, utcnow(), "user:ann", hold_id)


def test_a_chunk_is_sized_for_several_calls_but_never_a_large_share_of_a_budget() -> None:
    assert chunk_size(Budgets(per_day=10**9), 1_000) == 1_000 * CHUNK_CALLS
    assert chunk_size(Budgets(per_day=80_000), 1_000) == 10_000  # an eighth of the day
    assert chunk_size(Budgets(per_day=800, per_month=10**9), 1_000) == 1_000  # one call at least


def test_calls_borrow_from_the_chunk_and_give_back_what_they_did_not_use() -> None:
    pool = ChunkPool(lease_seconds=60)
    assert pool.lend("user:ann", 100, 10) is None  # no chunk yet: hold one in Redis
    pool.add("user:ann", _chunk(300))
    first = pool.lend("user:ann", 100, 10)
    second = pool.lend("user:ann", 100, 10)
    assert first is not None and second is not None
    assert first.tokens == second.tokens == 100 and first.id == "c1"
    pool.give_back(first, used=40)  # 60 unused come back: 160 left
    assert pool.lend("user:ann", 150, 10) is not None
    assert pool.ended() == []  # its calls are out: nothing ends
    # 10 left cannot lend a whole call: the chunk retires, and ends once its calls are back.
    assert pool.lend("user:ann", 100, 10) is None
    pool.give_back(second, used=100)
    assert pool.ended() == []  # one call still out
    pool.give_back(Hold(150, utcnow(), "user:ann", "c1"), used=150)
    [ended] = pool.ended()
    assert ended.id == "c1" and ended.tokens == 300 and not pool


def test_a_fresh_chunk_limited_by_the_budget_lends_less_than_asked() -> None:
    pool = ChunkPool(lease_seconds=60)
    pool.add("user:ann", _chunk(50))
    assert pool.lend("user:ann", 100, 60, fresh=True) is None  # under the call's prompt
    pool.add("user:ann", _chunk(70, "c2"))
    lent = pool.lend("user:ann", 100, 60, fresh=True)
    assert lent is not None and lent.tokens == 70  # the call is capped at it
    held = {hold.id for hold in pool.ended(everything=True)}
    assert held == {"c1"}  # c2 has a call out: it ends when the call is back

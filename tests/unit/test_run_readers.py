"""Readers of a run: the feed's ring, falling behind it onto the log, coalescing, gaps.

Driven against the real memory run store; the cross-process and Redis cases are in
tests/e2e/test_resumable_runs.py.
"""

from __future__ import annotations

import asyncio

import pytest

from app.agents.events import RunCompleted, RunStarted, TokenEvent
from app.agents.feed import LoggedEvent, RunFeed
from app.agents.followers import EventsMissed, FollowItem, RunFollowers, coalesce
from app.store.run_records import RunRecord
from app.store.run_store_memory import MemoryRunStore

RUN_ID = "a" * 32


def _events(count: int) -> list[LoggedEvent]:
    """run_started, count-2 tokens, run_completed: seq 1..count."""
    events: list[LoggedEvent] = [
        LoggedEvent.of(RunStarted(seq=1, run_id=RUN_ID, agent="chat")),
        *(LoggedEvent.of(TokenEvent(seq=seq, text=f"t{seq} ")) for seq in range(2, count)),
        LoggedEvent.of(RunCompleted(seq=count, output="done")),
    ]
    return events


async def _nothing_lost(record: RunRecord) -> None:
    return None


async def _collect(followers: RunFollowers, after: int = 0) -> list[FollowItem]:
    return [item async for item in followers.follow(RUN_ID, after=after)]


def test_the_ring_hands_out_what_follows_a_cursor_or_none_when_it_left_it_behind() -> None:
    feed = RunFeed(capacity=4)
    for item in _events(6):
        feed.push(item)
    assert [item.seq for item in feed.after(3) or []] == [4, 5, 6]
    assert feed.after(6) == []
    assert feed.after(1) is None  # seq 2 has left the 4-event ring
    assert feed.ended and feed.first_seq == 3


class _Clock:
    now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_events_a_second_old_keep_only_their_json_and_read_back_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr("app.agents.feed.time", clock)
    feed = RunFeed()
    events = _events(14)
    originals = [item.event for item in events]
    for item in events:
        item.wire = b"frame"  # as a transport caches it
    for item in events[:10]:  # seq 1-10 at once (seq 1 is the first mark)
        feed.push(item)
    clock.now += 1.0
    feed.push(events[10])  # seq 11: seq 1 is a second old; 11 the new mark
    assert events[0].wire is None and events[1].wire == b"frame"
    clock.now += 0.5
    feed.push(events[11])  # not yet: the mark is half a second old
    assert events[1].wire == b"frame"
    clock.now += 0.5
    feed.push(events[12])  # seq 2-11 settle
    settled, fresh = events[:11], events[11:13]
    assert all(item.wire is None for item in settled)
    assert all(item._event is None for item in settled if item.type == "token")
    assert settled[0]._event is originals[0]  # run_started keeps its object
    assert all(item.wire == b"frame" and item._event is not None for item in fresh)
    feed.push(events[13])
    # Read back as they were: the same events, the same JSON, in the same ring.
    read = feed.after(0) or []
    assert [item.seq for item in read] == list(range(1, 15))
    assert [item.event for item in read] == originals
    assert [item.json for item in read] == [item.json for item in events]


def test_coalescing_joins_consecutive_tokens_and_keeps_the_last_id() -> None:
    merged = coalesce(_events(5))
    assert [item.type for item in merged] == ["run_started", "token", "run_completed"]
    token = merged[1]
    assert token.seq == 4 and token.event.seq == 4
    assert getattr(token.event, "text", None) == "t2 t3 t4 "


async def test_a_reader_behind_the_ring_catches_up_from_the_log_without_losing_text() -> None:
    store = MemoryRunStore(events_max=1000)
    events = _events(50)
    await store.append_events(RUN_ID, [item.stored() for item in events])
    feed = RunFeed(capacity=8)
    for item in events:
        feed.push(item)
    followers = RunFollowers(store, local_feed=lambda _: feed, reap=_nothing_lost)
    items = await _collect(followers)
    assert all(isinstance(item, LoggedEvent) for item in items)
    logged = [item for item in items if isinstance(item, LoggedEvent)]
    text = "".join(getattr(item.event, "text", "") for item in logged if item.type == "token")
    assert text == "".join(f"t{seq} " for seq in range(2, 50))  # every token's text, in order
    ids = [item.seq for item in logged]
    assert ids == sorted(set(ids)) and ids[-1] == 50  # strictly increasing, to the end
    assert len(logged) < 50  # the part read from the log was coalesced


async def test_a_reader_older_than_the_log_is_told_what_it_missed_then_gets_the_rest() -> None:
    store = MemoryRunStore(events_max=100)
    await store.create(RunRecord(id=RUN_ID, kind="run", owner="user:a", agent="chat", input="x"))
    await store.transition(RUN_ID, to="completed", allowed_from=frozenset({"queued"}))
    await store.append_events(RUN_ID, [item.stored() for item in _events(250)])
    followers = RunFollowers(store, local_feed=lambda _: None, reap=_nothing_lost)
    items = await _collect(followers)
    missed = items[0]
    assert isinstance(missed, EventsMissed)
    assert (missed.from_seq, missed.to_seq) == (1, 150)
    assert missed.run is not None and missed.run.status == "completed"
    rest = [item.seq for item in items[1:] if isinstance(item, LoggedEvent)]
    assert rest == list(range(151, 251))  # the tail read the kept log in full


async def test_live_readers_of_one_run_see_the_same_events_and_a_late_one_gets_history() -> None:
    store = MemoryRunStore(events_max=1000)
    feed = RunFeed()
    followers = RunFollowers(store, local_feed=lambda _: feed, reap=_nothing_lost)
    events = _events(30)
    early = asyncio.create_task(_collect(followers))
    for item in events[:10]:
        feed.push(item)
        await asyncio.sleep(0)
    late = asyncio.create_task(_collect(followers))
    for item in events[10:]:
        feed.push(item)
        await asyncio.sleep(0)
    first, second = await asyncio.wait_for(asyncio.gather(early, late), 5)
    expected = list(range(1, 31))
    assert [i.seq for i in first if isinstance(i, LoggedEvent)] == expected
    assert [i.seq for i in second if isinstance(i, LoggedEvent)] == expected

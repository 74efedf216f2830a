"""A run's events in this process: a bounded ring of the latest ones that any number of readers
follow with a cursor each.

The run pushes and never waits for a reader: a reader is just a sequence number, so a slow
one costs nothing but its place. A reader whose cursor falls out of the ring reads from the
run's log instead (app/agents/followers.py) and comes back to the ring once it has caught up.
Each event is serialised once (``LoggedEvent.json``), for the log and every reader alike.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from itertools import islice

from app.agents.events import EVENT_ADAPTER, TERMINAL_TYPES, Event
from app.store.run_store import StoredEvent

_HEAD = re.compile(r'\{"seq":(?P<seq>[0-9]+),"ts":"[^"]*","type":"(?P<type>[a-z_]+)"')
_new_tuple = tuple.__new__
FEED_EVENTS = 4096  # per run: about a minute of fast tokens
FEED_BYTES = 4 * 1024 * 1024  # and at most this much event JSON, whatever the events' size
SETTLE_SECONDS = 1.0  # an event this old has been taken by every reader that keeps up


class LoggedEvent:
    """One event with its sequence number and JSON; the parsed event and the wire frame are
    made on first use and shared by every reader."""

    __slots__ = ("_event", "first_seq", "json", "seq", "type", "wire")

    def __init__(self, seq: int, type: str, json: str, event: Event | None = None) -> None:
        self.seq = seq
        self.first_seq = seq  # coalesced tokens: the first of the merged events
        self.type = type
        self.json = json
        self._event = event
        self.wire: bytes | None = None  # a transport's encoding, cached by that transport

    @classmethod
    def of(cls, event: Event) -> LoggedEvent:
        # The serializer straight, as model_dump_json() calls it with its defaults (one per
        # event of every run: its keyword plumbing cost 40 % of the call);
        # tests/unit/agents/test_events.py holds the two equal.
        json = event.__pydantic_serializer__.to_json(event).decode()
        return cls(event.seq, event.type, json, event)

    @classmethod
    def from_stored(cls, stored: StoredEvent) -> LoggedEvent:
        # Every event's JSON starts {"seq":N,"ts":"...","type":"..." (the run wrote it): read
        # that prefix, not the whole event, which may be long.
        match = _HEAD.match(stored.json)
        if match is not None and int(match["seq"]) == stored.seq:
            return cls(stored.seq, match["type"], stored.json)
        # Appended by someone other than the run (a cancel, a lost run's end): the log's number
        # is the event's.
        data = json.loads(stored.json)
        return cls.of(EVENT_ADAPTER.validate_python({**data, "seq": stored.seq}))

    @property
    def event(self) -> Event:
        if self._event is None:
            self._event = EVENT_ADAPTER.validate_json(self.json)
        return self._event

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def stored(self) -> StoredEvent:
        return _new_tuple(StoredEvent, (self.seq, self.json))  # StoredEvent(...), in C

    def settle(self) -> None:
        """Read by every reader keeping up: keep the JSON only. A late reader has the event
        parsed and the frame encoded again; a token's parsed event (about 500 bytes) and
        frame were two thirds of what a long run's ring held."""
        if self.type == "token":  # nobody keeps a token's identity (others: the run may)
            self._event = None
        self.wire = None


class RunFeed:
    def __init__(
        self, *, after: int = 0, capacity: int = FEED_EVENTS, max_bytes: int = FEED_BYTES
    ) -> None:
        self._items: deque[LoggedEvent] = deque(maxlen=capacity)
        self._bytes = 0  # JSON held by the ring (each event also keeps its frame, about as big)
        self._max_bytes = max_bytes
        self.last_seq = after  # the newest event pushed (or the point the feed starts after)
        self.ended = False  # the terminal event was pushed, or the feed was closed
        self._waiters: list[asyncio.Future[None]] = []
        # Events up to _mark are settled once SETTLE_SECONDS have passed since it was set:
        # one clock read per push, and the events settled once each.
        self._mark = self._settled = after
        self._settle_at = 0.0

    @property
    def first_seq(self) -> int:
        """The oldest event still in the ring (the next one to come when it is empty)."""
        return self._items[0].seq if self._items else self.last_seq + 1

    def push(self, item: LoggedEvent) -> None:
        items = self._items
        if len(items) == items.maxlen:
            self._bytes -= len(items[0].json)
        items.append(item)
        self._bytes += len(item.json)
        while self._bytes > self._max_bytes and len(items) > 1:
            self._bytes -= len(items.popleft().json)
        self.last_seq = item.seq
        if item.type in TERMINAL_TYPES:  # item.terminal without the call: once per event
            self.ended = True
        now = time.monotonic()
        if now >= self._settle_at:
            self._settle(self._mark)
            self._mark, self._settle_at = item.seq, now + SETTLE_SECONDS
        if self._waiters:
            self._wake()

    def _settle(self, upto: int) -> None:
        items = self._items
        if upto <= self._settled or not items:
            return
        # Sequence numbers run consecutively through the ring (after() relies on it too);
        # if they ever did not, this starts too late and settles less, never too much.
        start = max(self._settled + 1 - items[0].seq, 0)
        for item in islice(items, start, None):
            if item.seq > upto:
                break
            item.settle()
        self._settled = upto

    def close(self) -> None:
        """No more events will come (a tail that stopped): readers fall back to the log."""
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a reader that gave up cancelled its own
                waiter.set_result(None)

    def after(self, seq: int) -> list[LoggedEvent] | None:
        """The events after ``seq`` (maybe none yet); None when some of them have already
        left the ring (read them from the log)."""
        items = self._items
        if seq >= self.last_seq:
            return []
        if not items or items[0].seq > seq + 1:
            return None
        start = seq + 1 - items[0].seq
        if start < len(items) and items[start].seq == seq + 1:  # consecutive: index directly
            return [items[i] for i in range(start, len(items))]
        return [item for item in items if item.seq > seq]

    async def wait(self, seq: int) -> None:
        """Until an event after ``seq`` is pushed or the feed ends. One future per waiting
        reader: a reader that is cancelled cancels only its own."""
        if self.last_seq > seq or self.ended:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:  # a stalled run must not collect departed readers
                self._waiters.remove(waiter)
            raise

"""The process's run-log writer: one store call for what every run handed over meanwhile, and
a run's end takes its rest only after the write holding its earlier events."""

from __future__ import annotations

import asyncio
import builtins

from prometheus_client import REGISTRY

from app.agents.log_writer import RunLogBatcher, RunLogWriter
from app.store.run_store import RunBatch, StoredEvent
from app.store.run_store_memory import MemoryRunStore


class SlowStore(MemoryRunStore):
    """The real memory store, whose batch writes take a while and are counted."""

    def __init__(self) -> None:
        super().__init__(events_max=1000)
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()

    async def append_batches(
        self, batches: builtins.list[RunBatch]
    ) -> builtins.list[Exception | None]:
        self.calls.append([batch.run_id for batch in batches])
        await self.release.wait()
        return await super().append_batches(batches)


def event(seq: int) -> StoredEvent:
    return StoredEvent(seq, f'{{"seq":{seq},"ts":"2026-11-30T04:00:00Z","type":"token"}}')


async def logged(store: MemoryRunStore, run_id: str) -> list[int]:
    stored = await store.read_events(run_id, after=0, limit=100)
    return [item.seq for item in stored]


async def test_events_of_many_runs_made_meanwhile_go_in_one_store_call() -> None:
    store = SlowStore()
    store.release.set()
    batcher = RunLogBatcher(store)
    writers = [RunLogWriter(batcher, f"run-{n}", kind="run") for n in range(50)]
    for writer in writers:
        writer.add(event(1))
        writer.add(event(2))
    rests = await asyncio.gather(*(writer.take_rest() for writer in writers))
    # Each end took its own rest (nothing had been written yet), no store call was needed.
    assert all([e.seq for e in rest] == [1, 2] for rest in rests) and store.calls == []

    others = [RunLogWriter(batcher, f"other-{n}", kind="run") for n in range(50)]
    for writer in others:
        writer.add(event(1))
    await asyncio.sleep(0)  # the flusher's turn
    await asyncio.sleep(0)
    assert store.calls == [[f"other-{n}" for n in range(50)]]  # one call for the 50 runs
    assert [await logged(store, f"other-{n}") for n in range(50)] == [[1]] * 50


async def test_an_end_during_a_write_waits_for_it_and_takes_only_what_came_after() -> None:
    store = SlowStore()
    batcher = RunLogBatcher(store)
    writer = RunLogWriter(batcher, "run-1", kind="run")
    writer.add(event(1))
    for _ in range(3):
        await asyncio.sleep(0)
    assert store.calls == [["run-1"]]  # the write of event 1 is in flight
    writer.add(event(2))
    writer.add(event(3))
    ending = asyncio.create_task(writer.take_rest())
    for _ in range(3):
        await asyncio.sleep(0)
    assert not ending.done()  # waits for the write holding event 1
    store.release.set()
    rest = await ending
    assert [e.seq for e in rest] == [2, 3]  # the end writes them with the record
    for _ in range(3):
        await asyncio.sleep(0)
    assert store.calls == [["run-1"]] and await logged(store, "run-1") == [1]


async def test_a_failed_write_loses_only_that_batch_and_is_counted() -> None:
    class FailingStore(MemoryRunStore):
        async def append_batches(
            self, batches: builtins.list[RunBatch]
        ) -> builtins.list[Exception | None]:
            return [ConnectionError("down") if b.run_id == "bad" else None for b in batches]

    failures = REGISTRY.get_sample_value("agent_run_log_write_failures_total") or 0.0
    store = FailingStore(events_max=100)
    batcher = RunLogBatcher(store)
    good, bad = (RunLogWriter(batcher, name, kind="run") for name in ("good", "bad"))
    good.add(event(1))
    bad.add(event(1))
    for _ in range(3):
        await asyncio.sleep(0)
    good.add(event(2))
    assert [e.seq for e in await good.take_rest()] == [2]
    assert await bad.take_rest() == []
    after = REGISTRY.get_sample_value("agent_run_log_write_failures_total") or 0.0
    assert after - failures == 1  # the bad run's one event; the good run's write stood

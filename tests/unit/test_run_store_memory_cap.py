"""The in-memory run store keeps at most ``max_finished`` finished runs of each kind."""

from __future__ import annotations

from app.store.run_records import RunKind, RunRecord, StatusSet
from app.store.run_store_memory import MemoryRunStore

QUEUED: StatusSet = frozenset({"queued"})


async def _finished(store: MemoryRunStore, run_id: str, kind: RunKind) -> None:
    await store.create(
        RunRecord(id=run_id, kind=kind, owner="user:a", agent="chat", input="x"),
        [],
    )
    await store.append_events(run_id, [], kind=kind)
    await store.transition(run_id, to="completed", allowed_from=QUEUED)


async def test_the_first_to_finish_go_first_and_unfinished_runs_and_other_kinds_stay() -> None:
    store = MemoryRunStore(events_max=100, max_finished=3)
    forgotten: list[str] = []
    store.on_forget(forgotten.append)
    await store.create(RunRecord(id="live", kind="run", owner="user:a", agent="chat", input="x"))
    for index in range(2):
        await _finished(store, f"task-{index}", "task")
    for index in range(5):
        await _finished(store, f"run-{index}", "run")

    assert forgotten == ["run-0", "run-1"]  # the callback hears of each, in finishing order
    for gone in ("run-0", "run-1"):
        assert await store.get(gone) is None
        assert await store.read_events(gone, after=0, limit=10) == []
    for kept in ("run-2", "run-3", "run-4", "task-0", "task-1", "live"):
        assert await store.get(kept) is not None, kept

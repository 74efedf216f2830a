"""A LangGraph checkpointer whose threads live in our session state (``ctx.state``).

The graph runs against an ``InMemorySaver`` (one thread per run, so runs never share one);
before the run the session's thread is restored into it, after a successful run it is
exported back. Only what a next run needs is exported: per namespace (the graph and each
subgraph) the latest checkpoint, the channel values it points at and its pending writes
(an interrupted task's resume values). Older checkpoints are dropped, so the stored bytes
grow with the conversation, not with every step ever taken (no time travel across runs).
Values stay in LangGraph's own serde (typed msgpack); the envelope is JSON.

A graph with ``DeltaChannel`` state (beta in LangGraph) rebuilds values from the whole
checkpoint chain: for such a graph the whole thread is kept (``keep_history``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

SNAPSHOT_FORMAT = 1
Typed = tuple[str, bytes]  # (serde type tag, bytes): how InMemorySaver keeps every value


class SessionSaver(InMemorySaver):
    """One saver per served graph; each run uses its own thread id (the run id)."""

    def __init__(self, *, keep_history: bool = False) -> None:
        super().__init__()
        self.keep_history = keep_history

    def restore(self, thread_id: str, snapshot: bytes) -> None:
        """Put an exported thread back under ``thread_id``. ValueError: not a snapshot."""
        data = json.loads(snapshot)
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError("not a LangGraph thread snapshot of a known format")
        for item in data["checkpoints"]:
            ns, checkpoint_id = item["ns"], item["id"]
            self.storage[thread_id][ns][checkpoint_id] = (
                _typed(item["checkpoint"]),
                _typed(item["metadata"]),
                item["parent"],
            )
            writes = self.writes[(thread_id, ns, checkpoint_id)]
            for task_id, index, channel, value, path in item["writes"]:
                writes[(task_id, index)] = (task_id, channel, _typed(value), path)
        for ns, channel, version, value in data["blobs"]:
            self.blobs[(thread_id, ns, channel, version)] = _typed(value)

    def export(self, thread_id: str) -> bytes:
        """The thread as bytes for ``ctx.state``: see the module docstring for what is kept."""
        checkpoints: list[dict[str, Any]] = []
        blobs: list[list[Any]] = []
        for ns, by_id in self.storage.get(thread_id, {}).items():
            if not by_id:
                continue
            kept = sorted(by_id) if self.keep_history else [max(by_id)]  # ids sort by time
            for checkpoint_id in kept:
                checkpoint, metadata, parent = by_id[checkpoint_id]
                writes = self.writes.get((thread_id, ns, checkpoint_id), {})
                checkpoints.append(
                    {
                        "ns": ns,
                        "id": checkpoint_id,
                        "checkpoint": _plain(checkpoint),
                        "metadata": _plain(metadata),
                        "parent": parent if self.keep_history else None,
                        "writes": [
                            [task_id, index, channel, _plain(value), path]
                            for (task_id, index), (_, channel, value, path) in writes.items()
                        ],
                    }
                )
                if not self.keep_history:
                    versions = self.serde.loads_typed(checkpoint)["channel_versions"]
                    for channel, version in versions.items():
                        blob = self.blobs.get((thread_id, ns, channel, version))
                        if blob is not None:
                            blobs.append([ns, channel, version, _plain(blob)])
        if self.keep_history:
            blobs = [
                [ns, channel, version, _plain(value)]
                for (thread, ns, channel, version), value in self.blobs.items()
                if thread == thread_id
            ]
        envelope = {"format": SNAPSHOT_FORMAT, "checkpoints": checkpoints, "blobs": blobs}
        return json.dumps(envelope, separators=(",", ":")).encode()


def _plain(value: Typed) -> list[str]:
    return [value[0], base64.b64encode(value[1]).decode()]


def _typed(value: list[str]) -> Typed:
    return value[0], base64.b64decode(value[1])

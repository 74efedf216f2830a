"""Cluster-safe key names: every key of one entity carries the entity's hash tag.

Redis Cluster hashes only the part of a key between the first ``{`` and the next ``}``, so
``<prefix>run:{<id>}`` and ``<prefix>run:{<id>}:events`` live in one slot and one script or
MULTI may touch both. Rule (docs/architecture.md "Storage"): a script, a MULTI/EXEC or a
WATCH touches keys of one tag only; anything spanning entities (an owner's index beside a
run's record) is a separate command, pipelined without a transaction. REDIS_KEY_PREFIX holds
no braces (the settings refuse them), so the tag is always the entity's.
"""

from __future__ import annotations


def tag(entity: str) -> str:
    """``{entity}``: the hash tag that keeps every key of ``entity`` in one slot."""
    if not entity or entity.startswith("}"):  # ``{}`` is no tag: the keys would scatter
        raise ValueError(f"no hash tag can be made of {entity!r}")
    return "{" + entity + "}"

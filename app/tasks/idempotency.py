"""The fingerprint stored with an Idempotency-Key: a reused key must come with the same task.

sha256 of the canonical JSON (sorted keys, no spaces) of every field that defines the task,
so a replay with the body's keys in another order matches and any change of agent, input,
session, step budget or params does not (the IETF Idempotency-Key draft answers that 422).
"""

from __future__ import annotations

import hashlib
import json

from app.store.run_records import RunRecord

# What a client chose when it submitted; everything else on the record is the server's.
DEFINING_FIELDS = frozenset({"agent", "input", "session_id", "max_steps", "params"})


def task_fingerprint(record: RunRecord) -> str:
    body = record.model_dump(mode="json", include=set(DEFINING_FIELDS))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()

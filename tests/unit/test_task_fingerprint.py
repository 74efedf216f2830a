"""The Idempotency-Key fingerprint covers the whole submit body (the API tests cover the
422 itself, on both backends)."""

from __future__ import annotations

from app.api.schemas.tasks import TaskCreate
from app.store.run_records import RunRecord
from app.tasks.idempotency import DEFINING_FIELDS, task_fingerprint


def _record(**fields: object) -> RunRecord:
    values: dict[str, object] = {"id": "a" * 32, "owner": "user:admin", "agent": "chat"}
    values["input"] = "hello"
    values.update(fields)
    return RunRecord.model_validate(values)


def test_every_field_of_the_submit_body_is_part_of_the_fingerprint() -> None:
    # A field added to the body without adding it here would let a reused key with a
    # different value of that field replay the first task.
    assert set(TaskCreate.model_fields) == DEFINING_FIELDS


def test_the_fingerprint_ignores_server_fields_and_key_order_but_not_the_body() -> None:
    base = _record(params={"temperature": 0, "max_tokens": 5})
    same = _record(
        id="b" * 32, status="completed", attempts=2, params={"max_tokens": 5, "temperature": 0}
    )
    assert task_fingerprint(base) == task_fingerprint(same)
    changed = [
        _record(agent="assistant", params=base.params),
        _record(input="hello!", params=base.params),
        _record(session_id="c" * 32, params=base.params),
        _record(max_steps=2, params=base.params),
        _record(params={"temperature": 0, "max_tokens": 6}),
    ]
    fingerprints = {task_fingerprint(record) for record in changed}
    assert len(fingerprints) == len(changed) and task_fingerprint(base) not in fingerprints

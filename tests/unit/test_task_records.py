"""Task records written before a rename still read back (Redis keeps them for the retention)."""

from __future__ import annotations

import json

from app.store.run_records import RunRecord, RunResult, from_fields, to_fields


def test_a_result_stored_as_final_answer_reads_back_as_output() -> None:
    record = RunRecord(
        id="a" * 32,
        owner="user:admin",
        agent="chat",
        input="hi",
        status="completed",
        result=RunResult(output="hello"),
    )
    fields = to_fields(record)
    assert json.loads(fields["result"])["output"] == "hello"
    fields["result"] = json.dumps({"final_answer": "from before", "reasoning": []})
    restored = from_fields(fields)
    assert restored.result is not None and restored.result.output == "from before"

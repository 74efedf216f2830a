"""AG-UI over the real app and middleware chain (in-process, both store backends): every
frame the server sends is parsed and validated by the ag-ui-protocol package's own models."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from ag_ui.core import Event, EventType
from pydantic import TypeAdapter

from tests.conftest import AppClient, login

EVENTS: TypeAdapter[Any] = TypeAdapter(Event)


def frames(body: str) -> list[tuple[int | None, Any]]:
    """Each SSE frame's id (None when it has none) and its AG-UI event, validated."""
    out: list[tuple[int | None, Any]] = []
    for block in body.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        ids = [line[4:] for line in block.splitlines() if line.startswith("id: ")]
        if data:
            out.append((int(ids[0]) if ids else None, EVENTS.validate_json("\n".join(data))))
    return out


def events(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [event for _, event in frames(response.text)]


def types(evs: list[Any]) -> list[str]:
    return [event.type.value for event in evs]


def run_input(thread: str, text: str | None = "Hello there", **extra: Any) -> dict[str, Any]:
    messages = [{"id": uuid.uuid4().hex, "role": "user", "content": text}] if text else []
    return {
        "threadId": thread,
        "runId": str(uuid.uuid4()),
        "messages": extra.pop("messages", messages),
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        **extra,
    }


async def auth(client: AppClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client)}"}


async def test_a_streamed_answer_is_an_ag_ui_run_on_a_client_chosen_thread(
    any_client: AppClient,
) -> None:
    headers = await auth(any_client)
    thread = str(uuid.uuid4())
    body = run_input(thread)
    response = await any_client.post("/v1/agents/chat/ag-ui", json=body, headers=headers)
    evs = events(response)
    kinds = types(evs)
    assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED"
    started, finished = evs[0], evs[-1]
    assert (started.thread_id, started.run_id) == (thread, body["runId"])
    assert started.protocol_version == "1.0"
    run_id = started.metadata["agent-service"]["runId"]
    assert response.headers["X-Run-ID"] == run_id
    assert kinds.count("TEXT_MESSAGE_START") == kinds.count("TEXT_MESSAGE_END") == 1
    assert kinds.index("STEP_STARTED") < kinds.index("STEP_FINISHED")
    text = "".join(e.delta for e in evs if e.type == EventType.TEXT_MESSAGE_CONTENT)
    assert text and finished.result == text
    assert finished.outcome.type == "success" and finished.usage[0].output_tokens > 0
    # The thread is a session of the caller's, readable with the native API, with the exchange.
    session = await any_client.get(f"/v1/sessions/{thread}", headers=headers)
    assert session.status_code == 200 and session.json()["message_count"] == 2
    record = await any_client.get(f"/v1/runs/{run_id}", headers=headers)
    assert record.json()["session_id"] == thread and record.json()["status"] == "completed"


async def test_the_next_run_on_a_thread_continues_it(client: AppClient) -> None:
    headers = await auth(client)
    thread = str(uuid.uuid4())
    first = events(
        await client.post("/v1/agents/chat/ag-ui", json=run_input(thread), headers=headers)
    )
    answer = first[-1].result
    history = [
        {"id": "u1", "role": "user", "content": "Hello there"},
        {"id": "a1", "role": "assistant", "content": answer},
        {"id": "u2", "role": "user", "content": [{"type": "text", "text": "And then?"}]},
    ]
    body = run_input(thread, messages=history)
    second = events(await client.post("/v1/agents/chat/ag-ui", json=body, headers=headers))
    assert types(second)[-1] == "RUN_FINISHED"
    messages = await client.get(f"/v1/sessions/{thread}/messages", headers=headers)
    texts = [m["content"] for m in messages.json()["items"]]
    assert texts == ["Hello there", answer, "And then?", second[-1].result]


async def test_a_tool_call_and_the_plan_arrive_as_ag_ui_events(any_client: AppClient) -> None:
    headers = await auth(any_client)
    body = run_input(str(uuid.uuid4()), "What is 6*7?")
    evs = events(await any_client.post("/v1/agents/assistant/ag-ui", json=body, headers=headers))
    kinds = types(evs)
    start = kinds.index("TOOL_CALL_START")
    assert kinds[start : start + 4] == [
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
    ]
    call, args, result = evs[start], evs[start + 1], evs[start + 3]
    assert call.tool_call_name == "calculator"
    assert "6*7" in json.loads(args.delta)["expression"].replace(" ", "")
    assert result.tool_call_id == call.tool_call_id and "42" in result.content
    delta = next(e for e in evs if e.type == EventType.STATE_DELTA)
    assert delta.delta[0].path == "/plan" and delta.delta[0].value["items"]
    assert "42" in evs[-1].result


async def test_a_question_is_an_interrupt_and_the_next_input_resumes_the_run(
    any_client: AppClient,
) -> None:
    headers = await auth(any_client)
    thread = str(uuid.uuid4())
    body = run_input(thread, "Archive the old reports")
    url = "/v1/agents/approval/ag-ui"
    first = events(await any_client.post(url, json=body, headers=headers))
    finished = first[-1]
    assert finished.type == EventType.RUN_FINISHED and finished.outcome.type == "interrupt"
    (question,) = finished.outcome.interrupts
    assert question.reason == "input_required"
    assert question.response_schema == {"type": "string", "enum": ["low", "normal", "high"]}
    # A new message on the thread while the question is open: AG-UI wants a RUN_ERROR.
    refused = events(await any_client.post(url, json=run_input(thread), headers=headers))
    assert types(refused) == ["RUN_ERROR"] and refused[0].code == "interrupt_pending"
    # A payload the question cannot take: RUN_ERROR, and the question stays open.
    bad = {"interruptId": question.id, "status": "resolved", "payload": "urgent"}
    refused = events(await any_client.post(url, json={**body, "resume": [bad]}, headers=headers))
    assert types(refused) == ["RUN_ERROR"] and refused[0].code == "invalid_input"

    answer = {"interruptId": question.id, "status": "resolved", "payload": "high"}
    second_body = {**body, "runId": "second", "resume": [answer]}
    second = events(await any_client.post(url, json=second_body, headers=headers))
    assert second[0].type == EventType.RUN_STARTED and second[0].run_id == "second"
    (confirm,) = second[-1].outcome.interrupts
    assert confirm.reason == "confirmation" and confirm.response_schema == {"type": "boolean"}
    approve = {"interruptId": confirm.id, "status": "resolved", "payload": {"approved": True}}
    third_body = {**body, "runId": "third", "resume": [approve]}
    third = events(await any_client.post(url, json=third_body, headers=headers))
    assert third[-1].outcome.type == "success"
    assert third[-1].result.startswith("Approved at high priority.")
    # Replaying that resume (AG-UI: resumes are idempotent) follows the run again.
    again = events(await any_client.post(url, json=third_body, headers=headers))
    assert again[-1].result == third[-1].result


async def test_resume_refusals_are_run_errors(client: AppClient) -> None:
    headers = await auth(client)
    thread = str(uuid.uuid4())
    url = "/v1/agents/approval/ag-ui"
    body = run_input(thread, "Archive the old reports")
    (question,) = events(await client.post(url, json=body, headers=headers))[-1].outcome.interrupts
    cases = {
        "interrupt_not_found": [{"interruptId": "nope", "status": "resolved", "payload": "x"}],
        "invalid_resume": [
            {"interruptId": question.id, "status": "resolved", "payload": "low"},
            {"interruptId": question.id, "status": "resolved", "payload": "low"},
        ],
    }
    for code, resume in cases.items():
        refused = events(await client.post(url, json={**body, "resume": resume}, headers=headers))
        assert [(e.type.value, e.code) for e in refused] == [("RUN_ERROR", code)]
    # Cancelling the interrupt stops the run: the AG-UI run ends cancelled.
    cancel = {"interruptId": question.id, "status": "cancelled"}
    ended = events(await client.post(url, json={**body, "resume": [cancel]}, headers=headers))
    assert ended[-1].type == EventType.RUN_FINISHED and ended[-1].outcome.type == "cancelled"


async def test_a_failing_run_ends_with_run_error(client: AppClient) -> None:
    headers = await auth(client)
    body = run_input(str(uuid.uuid4()), forwardedProps={"params": {"temperature": 5}})
    evs = events(await client.post("/v1/agents/chat/ag-ui", json=body, headers=headers))
    assert evs[-1].type == EventType.RUN_ERROR and evs[-1].code == "invalid_params"


async def test_bad_input_is_refused_before_any_run(client: AppClient) -> None:
    headers = await auth(client)
    url = "/v1/agents/chat/ag-ui"
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (url, {"threadId": "t"}, 422, "validation_error"),
        (url, run_input("no spaces allowed"), 422, "validation_error"),
        (url, run_input("x" * 65), 422, "validation_error"),
        (url, run_input("t1", None), 422, "validation_error"),
        (
            url,
            run_input("t2", messages=[{"id": "a", "role": "assistant", "content": "hi"}]),
            422,
            "validation_error",
        ),
        (url, run_input("t3", forwardedProps={"maxSteps": 0}), 422, "validation_error"),
        ("/v1/agents/nobody/ag-ui", run_input("t4"), 404, "agent_not_found"),
    ]
    for path, body, status, code in cases:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["code"] == code
    unauthenticated = await client.post(url, json=run_input("t5"))
    assert unauthenticated.status_code == 401


async def test_another_principals_thread_cannot_be_used(any_client: AppClient) -> None:
    headers = await auth(any_client)
    thread = str(uuid.uuid4())
    events(await any_client.post("/v1/agents/chat/ag-ui", json=run_input(thread), headers=headers))
    created = await any_client.post(
        "/v1/auth/users",
        json={"username": "bob", "password": "bob-long-password", "scopes": ["agents:run"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    bob = {"Authorization": f"Bearer {await login(any_client, 'bob-long-password', 'bob')}"}
    response = await any_client.post("/v1/agents/chat/ag-ui", json=run_input(thread), headers=bob)
    assert response.status_code == 404 and response.json()["code"] == "session_not_found"
    # The thread of another agent is a conflict, as a session of another agent is.
    other = await any_client.post(
        "/v1/agents/assistant/ag-ui", json=run_input(thread), headers=headers
    )
    assert other.status_code == 409 and other.json()["code"] == "session_agent_mismatch"


async def test_reconnecting_after_a_frame_id_sends_exactly_the_rest(client: AppClient) -> None:
    headers = await auth(client)
    body = run_input(str(uuid.uuid4()))
    response = await client.post("/v1/agents/chat/ag-ui", json=body, headers=headers)
    original = frames(response.text)
    run_id = response.headers["X-Run-ID"]
    base = f"/v1/agents/chat/ag-ui/runs/{run_id}"
    whole = frames((await client.get(f"{base}?agui_run_id={body['runId']}", headers=headers)).text)
    assert [e for _, e in whole] == [e for _, e in original]
    ids = [seq for seq, _ in original if seq is not None]
    cut = ids[len(ids) // 2]
    rest = await client.get(base, headers={**headers, "Last-Event-ID": str(cut)})
    expected = [e for e in [e for _, e in original][_after(original, cut) :]]
    got = [e for _, e in frames(rest.text)]
    assert [e.type for e in got] == [e.type for e in expected]
    assert "".join(getattr(e, "delta", "") for e in got) == "".join(
        getattr(e, "delta", "") for e in expected
    )
    missing = await client.get(f"/v1/agents/chat/ag-ui/runs/{'0' * 32}", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "run_not_found"


def _after(original: list[tuple[int | None, Any]], cut: int) -> int:
    """The index of the first frame after the frame whose id is ``cut``."""
    return next(i for i, (seq, _) in enumerate(original) if seq == cut) + 1


async def test_a_thread_is_a_session_the_native_routes_take_too(any_client: AppClient) -> None:
    # A UUID thread id is a session id like ours: usable in a native run and its listing.
    headers = await auth(any_client)
    thread = str(uuid.uuid4())
    response = await any_client.post(
        "/v1/agents/chat/ag-ui", json=run_input(thread, "My name is Ada."), headers=headers
    )
    assert types(events(response))[-1] == "RUN_FINISHED"
    native = await any_client.post(
        "/v1/agents/chat/invoke",
        json={"input": "What is my name?", "session_id": thread},
        headers=headers,
    )
    assert native.status_code == 200, native.text
    assert native.json()["session_id"] == thread
    listed = await any_client.get(f"/v1/runs?session_id={thread}", headers=headers)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 2
    messages = await any_client.get(f"/v1/sessions/{thread}/messages", headers=headers)
    said = [(m["role"], m["content"]) for m in messages.json()["items"]]
    assert len(said) == 4  # both exchanges, in order, in one session
    assert said[0] == ("user", "My name is Ada.") and said[2] == ("user", "What is my name?")
    bad = await any_client.get("/v1/runs?session_id=not%20an%20id", headers=headers)
    assert bad.status_code == 422

"""POST/GET/cancel/DELETE /v1/responses in-process, on both store backends: each response is
a kept run, its events are the openai package's types with replayable sequence numbers,
conversations continue through sessions, a question ends a response incomplete and the
next response answers it in the same run, and bad requests are OpenAI's 400s."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.integration.openai_responses_support import as_response, sse_events, text_of, validated

Client = tuple[AppClient, dict[str, str]]


@pytest.fixture
async def oc(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[Client]:
    settings = make_settings(
        RATE_LIMIT_ENABLED=False, OFFLINE_LATENCY_MS=0, OFFLINE_TOKENS_PER_SECOND=0, **store_backend
    )
    async with app_client(settings) as client:
        token = await login(client)
        yield client, {"Authorization": f"Bearer {token}"}


async def create(oc: Client, **body: Any) -> dict[str, Any]:
    client, auth = oc
    answer = await client.post("/v1/responses", headers=auth, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def until(oc: Client, response_id: str, statuses: set[str]) -> dict[str, Any]:
    client, auth = oc
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = (
            await client.get(f"/v1/responses/{response_id}", headers=auth)
        ).json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_a_response_is_a_kept_run(oc: Client) -> None:
    client, auth = oc
    answer = await client.post(
        "/v1/responses",
        headers=auth,
        json={"model": "chat", "input": "Hello", "metadata": {"ticket": "42"}},
    )
    response = as_response(answer.json())
    run_id = answer.headers["x-run-id"]
    assert response.id == f"resp_{run_id}" and response.model == "chat"
    assert response.status == "completed" and response.metadata == {"ticket": "42"}
    assert response.output_text and response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    run = (await client.get(f"/v1/runs/{run_id}", headers=auth)).json()
    assert run["status"] == "completed" and run["output"] == response.output_text
    again = await client.get(f"/v1/responses/{response.id}", headers=auth)
    assert again.json() == answer.json()


async def test_stream_events_are_typed_numbered_and_replayable(oc: Client) -> None:
    client, auth = oc
    streamed = await client.post(
        "/v1/responses", headers=auth, json={"model": "chat", "input": "Hi", "stream": True}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = validated(sse_events(streamed.text))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == text_of(final) != ""
    # Replayed from the run's log: the same events with the same numbers, from any point.
    replay = await client.get(f"/v1/responses/{final['id']}?stream=true", headers=auth)
    assert sse_events(replay.text) == events
    resumed = await client.get(
        f"/v1/responses/{final['id']}?stream=true&starting_after=5", headers=auth
    )
    assert sse_events(resumed.text) == events[6:]


async def test_previous_response_id_continues_the_conversation(oc: Client) -> None:
    client, auth = oc
    first = await create(oc, model="chat", input="My name is Ada.", instructions="Be brief.")
    second = await create(
        oc, model="chat", input="What is my name?", previous_response_id=first["id"]
    )
    assert second["previous_response_id"] == first["id"] and second["instructions"] is None
    runs = [
        (await client.get(f"/v1/runs/{r['agent_run']['run_id']}", headers=auth)).json()
        for r in (first, second)
    ]
    assert runs[0]["session_id"] is not None and runs[0]["session_id"] == runs[1]["session_id"]
    history = await client.get(f"/v1/sessions/{runs[0]['session_id']}/messages", headers=auth)
    contents = [m["content"] for m in history.json()["items"]]
    assert contents == ["My name is Ada.", text_of(first), "What is my name?", text_of(second)]
    other = await client.post(
        "/v1/responses",
        headers=auth,
        json={"model": "assistant", "input": "x", "previous_response_id": first["id"]},
    )
    assert other.status_code == 400 and other.json()["error"]["param"] == "model"


async def test_a_client_conversation_is_kept_for_the_next_response(oc: Client) -> None:
    client, auth = oc
    items = [
        {"role": "user", "content": "I like tea."},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Noted."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And?"}]},
    ]
    first = await create(oc, model="chat", input=items)
    run = (await client.get(f"/v1/runs/{first['agent_run']['run_id']}", headers=auth)).json()
    assert run["input"] == "And?"
    history = await client.get(f"/v1/sessions/{run['session_id']}/messages", headers=auth)
    contents = [m["content"] for m in history.json()["items"]]
    assert contents == ["I like tea.", "Noted.", "And?", text_of(first)]


async def test_a_question_ends_incomplete_and_the_next_response_answers_it(oc: Client) -> None:
    client, auth = oc
    asked = as_response(await create(oc, model="approval", input="Restart the cache"))
    assert asked.status == "incomplete"
    assert asked.incomplete_details is not None
    question = asked.output[-1]
    assert question.type == "mcp_approval_request" and question.name == "choice"
    assert json.loads(question.arguments)["choices"] == ["low", "normal", "high"]
    run_id = asked.id.removeprefix("resp_")
    assert (await client.get(f"/v1/runs/{run_id}", headers=auth)).json()["status"] == (
        "input_required"
    )
    wrong = await client.post(
        "/v1/responses",
        headers=auth,
        json={"model": "approval", "input": "urgent", "previous_response_id": asked.id},
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "input"
    chosen = as_response(
        await create(oc, model="approval", input="high", previous_response_id=asked.id)
    )
    assert chosen.id.startswith(f"resp_{run_id}_") and chosen.status == "incomplete"
    confirm = chosen.output[-1]
    assert confirm.type == "mcp_approval_request" and confirm.name == "confirm"
    approval = {"type": "mcp_approval_response", "approval_request_id": confirm.id, "approve": True}
    done = await create(oc, model="approval", input=[approval], previous_response_id=chosen.id)
    assert done["status"] == "completed" and text_of(done).startswith("Approved at high priority")
    run = (await client.get(f"/v1/runs/{run_id}", headers=auth)).json()
    assert run["status"] == "completed" and run["output"] == text_of(done)
    again = await client.post(
        "/v1/responses",
        headers=auth,
        json={"model": "approval", "input": "high", "previous_response_id": asked.id},
    )
    assert again.status_code == 200 and again.json()["id"].removeprefix("resp_") != run_id


async def test_the_agents_tool_calls_are_server_side_items(oc: Client) -> None:
    response = as_response(await create(oc, model="assistant", input="What is 6*7?"))
    types = [item.type for item in response.output]
    assert "function_call" not in types and types[-1] == "message"
    call = response.output[0]
    assert call.type == "mcp_call" and call.name == "calculator" and call.output == "42"
    assert call.server_label == "assistant" and call.status == "completed"


async def test_store_false_keeps_nothing_to_read_or_continue(oc: Client) -> None:
    client, auth = oc
    response = await create(oc, model="chat", input="Hi", store=False)
    assert response["status"] == "completed" and response["store"] is False
    assert (await client.get(f"/v1/responses/{response['id']}", headers=auth)).status_code == 404
    continued = await client.post(
        "/v1/responses",
        headers=auth,
        json={"model": "chat", "input": "x", "previous_response_id": response["id"]},
    )
    assert continued.status_code == 404
    assert continued.json()["error"]["param"] == "previous_response_id"


async def test_background_responses_are_tasks(oc: Client) -> None:
    client, auth = oc
    queued = await create(oc, model="chat", input="Hi", background=True)
    assert queued["status"] == "queued" and queued["background"] is True
    task_id = queued["agent_run"]["run_id"]
    done = await until(oc, queued["id"], {"completed"})
    assert done["status"] == "completed" and text_of(done)
    task = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()
    assert task["status"] == "completed"
    follow = await create(oc, model="chat", input="More", previous_response_id=queued["id"])
    run = (await client.get(f"/v1/runs/{follow['agent_run']['run_id']}", headers=auth)).json()
    assert run["session_id"] == task["session_id"] is not None


async def test_cancel_and_delete(oc: Client) -> None:
    client, auth = oc
    asked = await create(oc, model="approval", input="Wipe the disk", background=True)
    waiting = await until(oc, asked["id"], {"incomplete"})
    assert waiting["incomplete_details"] == {"reason": "input_required"}
    cancelled = await client.post(f"/v1/responses/{asked['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200
    # The response had ended (its question); the task waiting for the answer stops too.
    task_url = f"/v1/tasks/{asked['agent_run']['run_id']}"
    deadline = time.monotonic() + 10
    while (await client.get(task_url, headers=auth)).json()["status"] != "cancelled":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    deleted = await client.delete(f"/v1/responses/{asked['id']}", headers=auth)
    assert deleted.json() == {"id": asked["id"], "object": "response.deleted", "deleted": True}
    for method in ("GET", "DELETE"):
        gone = await client.request(method, f"/v1/responses/{asked['id']}", headers=auth)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "response_not_found"


async def test_another_callers_response_is_not_found(oc: Client) -> None:
    client, auth = oc
    made = await client.post(
        "/v1/auth/users",
        headers=auth,
        json={"username": "bob", "password": "bob-password-123", "scopes": ["agents:run"]},
    )
    assert made.status_code == 201, made.text
    bob = {"Authorization": f"Bearer {await login(client, 'bob-password-123', 'bob')}"}
    response = await create(oc, model="chat", input="mine")
    for method, path in (
        ("GET", f"/v1/responses/{response['id']}"),
        ("POST", f"/v1/responses/{response['id']}/cancel"),
        ("DELETE", f"/v1/responses/{response['id']}"),
    ):
        answer = await client.request(method, path, headers=bob)
        assert answer.status_code == 404, (method, path)
    continued = await client.post(
        "/v1/responses",
        headers=bob,
        json={"model": "chat", "input": "x", "previous_response_id": response["id"]},
    )
    assert continued.status_code == 404
    refused = await client.post(
        "/v1/responses", headers=bob, json={"model": "chat", "input": "x", "background": True}
    )
    assert refused.status_code == 403
    assert (await client.get(f"/v1/responses/{response['id']}", headers=auth)).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat"}, "input"),
        ({"model": "chat", "input": ""}, "input"),
        ({"model": "chat", "input": "x", "bogus": 1}, "bogus"),
        ({"model": "chat", "input": "x", "tools": [{"type": "function", "name": "f"}]}, "tools"),
        ({"model": "chat", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "chat", "input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        (
            {"model": "chat", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input.0.content.0",
        ),
        ({"model": "chat", "input": [{"type": "function_call_output"}]}, "input.0.type"),
        ({"model": "chat", "input": [{"role": "assistant", "content": "hi"}]}, "input"),
        (
            {
                "model": "chat",
                "input": [
                    {"type": "mcp_approval_response", "approval_request_id": "x", "approve": 1}
                ],
            },
            "input.0",
        ),
        ({"model": "chat", "input": "x", "background": True, "store": False}, "store"),
        ({"model": "chat", "input": "x" * 2001}, "input"),
    ],
)
async def test_bad_requests_are_openai_400s(oc: Client, body: dict[str, Any], param: str) -> None:
    client, auth = oc
    answer = await client.post("/v1/responses", headers=auth, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


async def test_unreadable_requests_are_answered_in_openai_shape(oc: Client) -> None:
    client, auth = oc
    broken = await client.post("/v1/responses", headers=auth, content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "validation_error"
    unknown = await client.post(
        "/v1/responses", headers=auth, json={"model": "gpt-x", "input": "x"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    for path in ("/v1/responses/nope", "/v1/responses/resp_" + "0" * 32 + "_7"):
        missing = await client.get(path, headers=auth)
        assert (
            missing.status_code == 404 and missing.json()["error"]["code"] == "response_not_found"
        )
    bad_resume = await client.get(
        "/v1/responses/resp_" + "0" * 32 + "?stream=true&starting_after=x", headers=auth
    )
    assert bad_resume.status_code == 400
    assert bad_resume.json()["error"]["param"] == "starting_after"
    anonymous = await client.post("/v1/responses", json={"model": "chat", "input": "x"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"

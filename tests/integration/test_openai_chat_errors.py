"""Errors of the OpenAI routes in-process: OpenAI's error object, the status its SDKs map to
their exception classes, the field at fault in ``param``, nothing lost, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import AppClient, SettingsFactory
from tests.integration.openai_chat_support import error_of, openai_app, sse_data, user

Client = tuple[AppClient, dict[str, str]]
URL = "/v1/chat/completions"


@pytest.fixture
async def oc(make_settings: SettingsFactory) -> AsyncIterator[Client]:
    async for pair in openai_app(make_settings, MAX_INPUT_CHARS=50):
        yield pair


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [user("hi")]}, "model", "validation_error"),
        ({"model": "chat"}, "messages", "validation_error"),
        ({"model": "chat", "messages": []}, "messages", "validation_error"),
        ({"model": "chat", "messages": [{"role": "robot", "content": "x"}]}, "messages.0", None),
        ({"model": "chat", "messages": [user("hi")], "temperature": 3}, "temperature", None),
        ({"model": "chat", "messages": [user("hi")], "stream": "yes"}, "stream", None),
        ({"model": "chat", "messages": [user("hi")], "n": 2}, "n", "invalid_request"),
        (
            {"model": "chat", "messages": [user("hi")], "tools": [{"type": "function"}]},
            "tools",
            "unsupported_parameter",
        ),
        (
            {"model": "chat", "messages": [user("hi"), {"role": "assistant", "content": "x"}]},
            "messages.1.role",
            "invalid_request",
        ),
        ({"model": "chat", "messages": [user("x" * 51)]}, "messages.0.content", "input_too_long"),
        ({"model": "chat", "messages": [user("hi")], "session_id": "nope"}, "session_id", None),
        (
            {"model": "trip-planner", "messages": [user("not json")]},
            "messages.0.content",
            "validation_error",
        ),
        (
            {"model": "trip-planner", "messages": [user('{"traveller": ""}')]},
            "messages.0.content.traveller",
            "validation_error",
        ),
    ],
)
async def test_a_bad_body_is_a_400_naming_the_field(
    oc: Client, body: dict[str, Any], param: str, code: str | None
) -> None:
    client, auth = oc
    answer = await client.post(URL, headers=auth, json=body)
    assert answer.status_code == 400, answer.text
    error = error_of(answer)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param or error["param"].startswith(param), error
    if code is not None:
        assert error["code"] == code
    runs = (await client.get("/v1/runs", headers=auth)).json()
    assert runs["total"] == 0  # refused before any run starts


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"text"'])
async def test_a_body_that_is_not_a_json_object_is_a_400(oc: Client, raw: bytes) -> None:
    client, auth = oc
    answer = await client.post(
        URL, headers={**auth, "Content-Type": "application/json"}, content=raw
    )
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "validation_error"


async def test_an_unknown_model_is_model_not_found(oc: Client) -> None:
    client, auth = oc
    answer = await client.post(URL, headers=auth, json={"model": "gpt-4o", "messages": [user("x")]})
    assert answer.status_code == 404
    error = error_of(answer)
    assert (error["type"], error["code"]) == ("invalid_request_error", "model_not_found")
    assert "gpt-4o" in error["message"]


async def test_credentials_and_scopes(oc: Client) -> None:
    client, auth = oc
    body = {"model": "chat", "messages": [user("x")]}
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer ask_00000000_" + "0" * 32},
    ):
        answer = await client.post(URL, headers=headers, json=body)
        assert answer.status_code == 401
        assert error_of(answer)["type"] == "invalid_request_error"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    key = await client.post(
        "/v1/auth/api-keys", headers=auth, json={"name": "reader", "scopes": ["sessions:read"]}
    )
    assert key.status_code == 201, key.text
    reader = {"Authorization": f"Bearer {key.json()['key']}"}
    listed = await client.get("/v1/models", headers=reader)
    assert listed.status_code == 200, listed.text
    answer = await client.post(URL, headers=reader, json=body)
    assert answer.status_code == 403
    assert error_of(answer)["code"] == "insufficient_scope"


async def test_a_failed_run_is_an_error_naming_the_run_and_not_retried(oc: Client) -> None:
    client, auth = oc
    body = {"model": "refuser", "messages": [user("x")]}
    answer = await client.post(URL, headers=auth, json=body)
    assert answer.status_code == 500
    assert answer.headers["x-should-retry"] == "false"
    error = error_of(answer)
    assert (error["type"], error["code"]) == ("server_error", "request_refused")
    assert error["message"] == "This request cannot be served."
    record = (await client.get(f"/v1/runs/{error['run_id']}", headers=auth)).json()
    assert record["status"] == "failed"
    streamed = await client.post(URL, headers=auth, json={**body, "stream": True})
    assert streamed.status_code == 200  # the stream had started: the error comes in-band
    payloads = sse_data(streamed)
    assert payloads[-1] == "[DONE]"
    last = json.loads(payloads[-2])
    assert last["error"]["code"] == "request_refused" and last["error"]["run_id"]
    contents = [json.loads(p)["choices"][0]["delta"].get("content") for p in payloads[:-2]]
    assert "Let me see... " in contents  # what came before the failure is not lost


async def test_a_question_in_a_stream_ends_it_with_an_error_naming_the_run(oc: Client) -> None:
    client, auth = oc
    body = {"model": "approval", "messages": [user("Email the team.")], "stream": True}
    answer = await client.post(URL, headers=auth, json=body)
    payloads = sse_data(answer)
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["code"] == "input_required" and error["run_id"] == answer.headers["x-run-id"]
    record = (await client.get(f"/v1/runs/{error['run_id']}", headers=auth)).json()
    assert record["status"] == "input_required"  # waiting, not cancelled
    assert record["pending_input"]["request_id"] == error["input_request"]["request_id"]
    cancel = await client.post(f"/v1/runs/{error['run_id']}/cancel", headers=auth)
    assert cancel.status_code == 202


async def test_unknown_paths_and_methods_answer_in_openais_shape(oc: Client) -> None:
    client, auth = oc
    assert error_of(await client.get(URL, headers=auth))["type"] == "invalid_request_error"
    assert (await client.get(URL, headers=auth)).status_code == 405

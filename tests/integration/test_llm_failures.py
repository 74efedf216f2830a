"""Model provider failures a client and an operator can act on.

The service runs in-process with ``LLM_PROVIDER=openai`` against the fake OpenAI server (a
real socket). For each failure the client must read what happened and whether retrying
helps (``retryable``, ``Retry-After``), and the log must hold exactly one
``llm_call_failed`` line with the host, the cause and the attempts, never the API key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import SettingsFactory, app_client, login
from tests.support.fake_openai import FakeOpenAI, Hang, Status, Text
from tests.support.ports import free_port
from tests.support.sse import parse_lines

API_KEY = "sk-test-failures-0123456789-SECRET"
PROXY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


async def invoke(make_settings: SettingsFactory, **settings: Any) -> httpx.Response:
    values: dict[str, Any] = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_MODEL": "served-model",
        "OPENAI_TIMEOUT_SECONDS": 5,
        "OPENAI_CONNECT_TIMEOUT_SECONDS": 1,
        "OPENAI_MAX_RETRIES": 0,
        **settings,
    }
    async with app_client(make_settings(**values)) as client:
        headers = {"Authorization": f"Bearer {await login(client)}"}
        return await client.post(
            "/v1/agents/chat/invoke", json={"input": "Say hello"}, headers=headers
        )


def log_lines(output: str, event: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                lines.append(record)
    return lines


def the_failure(capsys: pytest.CaptureFixture[str], response: httpx.Response) -> dict[str, Any]:
    """The one llm_call_failed line; and the key is nowhere, neither logged nor answered."""
    output = capsys.readouterr().out
    assert API_KEY not in output and API_KEY not in response.text
    failures = log_lines(output, "llm_call_failed")
    assert len(failures) == 1, failures
    return failures[0]


def problem(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


async def test_connection_refused_names_host_and_cause_and_says_retry_may_help(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there
    response = await invoke(
        make_settings, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_MAX_RETRIES=1
    )

    body = problem(response, "llm_unavailable")
    assert body["retryable"] is True
    assert body["detail"] == (
        "The model provider could not be reached (connection refused); retrying may help."
    )
    line = the_failure(capsys, response)
    assert line["host"] == f"127.0.0.1:{port}"
    assert line["cause"].startswith("ConnectError: ")
    assert "ConnectionRefusedError: [Errno 111]" in line["cause"]
    assert (line["provider"], line["model"], line["code"]) == (
        "openai",
        "served-model",
        body["code"],
    )
    assert line["attempts"] == 2 and line["retryable"] is True


async def test_rejected_key_is_not_retried_and_says_so(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {API_KEY}"}})
    fake_openai.script(Status(401, body=echo), Text())
    response = await invoke(make_settings, OPENAI_BASE_URL=fake_openai.url, OPENAI_MAX_RETRIES=2)

    body = problem(response, "llm_unauthorized")
    assert body["retryable"] is False
    assert body["detail"] == (
        "The model provider rejected the API key (HTTP 401); retrying will not help."
    )
    assert "Retry-After" not in response.headers
    assert fake_openai.request_count == 1  # retrying a bad key only burns time
    line = the_failure(capsys, response)
    assert line["host"] == f"127.0.0.1:{fake_openai.port}" and line["attempts"] == 1
    assert line["status"] == 401
    assert line["cause"].startswith("HTTP 401 (application/json): ")
    assert "Incorrect API key provided: ***" in line["cause"]  # the excerpt, key removed


async def test_unknown_model_is_named_and_not_retried(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = json.dumps(
        {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}
    )
    fake_openai.script(Status(404, body=missing), Text())
    response = await invoke(
        make_settings, OPENAI_BASE_URL=fake_openai.url, OPENAI_MODEL="gpt-9", OPENAI_MAX_RETRIES=2
    )

    body = problem(response, "llm_model_not_found")
    assert body["retryable"] is False
    assert body["detail"] == (
        "Model 'gpt-9' was not found at the model provider (HTTP 404); retrying will not help."
    )
    assert fake_openai.request_count == 1
    line = the_failure(capsys, response)
    assert line["model"] == "gpt-9" and "does not exist" in line["cause"]


async def test_a_proxy_html_page_is_a_bad_response_with_a_readable_log_line(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.script(Status(502, body=PROXY_PAGE, content_type="text/html"))
    response = await invoke(make_settings, OPENAI_BASE_URL=fake_openai.url)

    body = problem(response, "llm_bad_response")
    assert body["retryable"] is True  # a failing gateway usually recovers
    assert body["detail"].startswith(
        "The model provider answered HTTP 502 with an HTML page instead of an API response"
    )
    line = the_failure(capsys, response)
    assert line["status"] == 502
    # Tags stripped, one line: the operator reads the proxy's words.
    assert line["cause"] == ("HTTP 502 (text/html): 502 Bad Gateway 502 Bad Gateway nginx/1.25.3")


async def test_an_html_page_instead_of_the_api_is_not_retryable(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # A base URL that points at a website answers 200 with HTML: asking again cannot help.
    page = "<!doctype html><html><title>Welcome</title><body>Our product</body></html>"
    fake_openai.script(Status(200, body=page, content_type="text/html; charset=utf-8"))
    response = await invoke(make_settings, OPENAI_BASE_URL=fake_openai.url, OPENAI_MAX_RETRIES=2)

    body = problem(response, "llm_bad_response")
    assert body["retryable"] is False and "HTML page" in body["detail"]
    assert fake_openai.request_count == 1
    assert the_failure(capsys, response)["cause"].startswith("HTTP 200 (text/html): Welcome")


async def test_timeout_says_how_long_was_waited_and_that_retry_may_help(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.script(Hang(seconds=3))
    response = await invoke(
        make_settings,
        OPENAI_BASE_URL=fake_openai.url,
        OPENAI_TIMEOUT_SECONDS=0.3,
        OPENAI_MAX_RETRIES=2,
    )

    body = problem(response, "llm_timeout")
    assert body["retryable"] is True
    assert body["detail"] == ("The model provider did not answer within 0.3 s; retrying may help.")
    assert fake_openai.request_count == 1  # a busy model is not asked twice by us
    line = the_failure(capsys, response)
    assert line["cause"].startswith("ReadTimeout") and line["attempts"] == 1


async def test_rate_limit_passes_the_providers_retry_after_on(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.script(Status(429, headers={"Retry-After": "7"}))
    response = await invoke(make_settings, OPENAI_BASE_URL=fake_openai.url)

    body = problem(response, "llm_rate_limited")
    assert body["retryable"] is True
    assert response.headers["Retry-After"] == "7"
    line = the_failure(capsys, response)
    assert line["retry_after_s"] == 7.0 and line["status"] == 429


async def test_a_stream_ends_with_the_same_diagnosis_in_band(
    fake_openai: FakeOpenAI, make_settings: SettingsFactory
) -> None:
    fake_openai.script(Status(401))
    settings = make_settings(
        LLM_PROVIDER="openai", OPENAI_BASE_URL=fake_openai.url, OPENAI_API_KEY=API_KEY
    )
    async with app_client(settings) as client:
        headers = {"Authorization": f"Bearer {await login(client)}"}
        response = await client.post(
            "/v1/agents/chat/stream", json={"input": "Say hello"}, headers=headers
        )
    frames = [frame for frame in parse_lines(iter(response.text.splitlines())) if frame.event]
    assert [frame.event for frame in frames] == ["run_started", "error"]
    error = frames[-1].json
    assert error["code"] == "llm_unauthorized" and error["retryable"] is False
    assert error["message"].startswith("The model provider rejected the API key (HTTP 401)")

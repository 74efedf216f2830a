"""The run routes (invoke, stream, OpenAI's chat completions and responses) answer the same
whether their arguments are found directly (the fast path, app/api/fast_routes.py, reached
past FastAPI's router by app/api/direct_routes.py) or by FastAPI's dependency solving (what a
request that is not plain takes, its body replayed, and every request once a dependency is
overridden)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi.dependencies.utils import solve_dependencies
from fastapi.routing import APIRoute

from app.api.deps import get_runs
from app.services import AppServices
from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem
from tests.integration.test_llm_failures import log_lines

INVOKE, STREAM = "/v1/agents/chat/invoke", "/v1/agents/chat/stream"
CHAT, RESPONSES = "/v1/chat/completions", "/v1/responses"
JSON = {"content-type": "application/json"}
BYPASS = {**JSON, "cache-control": "no-cache"}
PLAIN = json.dumps({"input": "Tell me about the sea", "store": False})
MAX_INPUT_CHARS = 60
# The ids a run, a request and a session get, and timings: different on every call.
Headers = dict[str, str]
VARYING = {"run_id", "session_id", "request_id", "execution_time", "instance", "ts", "duration_s"}
VARYING |= {"id", "created", "created_at", "completed_at", "item_id", "response_id"}  # OpenAI's


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[AppClient]:
    async with app_client(make_settings(MAX_INPUT_CHARS=MAX_INPUT_CHARS)) as http:
        yield http


@pytest.fixture
def solves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts FastAPI's dependency solving (a route handler reads the module's function)."""
    calls: list[str] = []
    original = solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["dependant"].path or "")
        return await original(**kwargs)

    monkeypatch.setattr("fastapi.routing.solve_dependencies", counting)
    yield calls


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


def _answer(response: httpx.Response) -> dict[str, Any]:
    """What a client sees, without the parts that differ on every call."""
    content_type = response.headers["content-type"]
    if content_type.startswith("text/event-stream"):
        frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        body: Any = _stable([frame if frame == "[DONE]" else json.loads(frame) for frame in frames])
    else:
        body = _stable(response.json())
    headers = {
        name: response.headers.get(name)
        for name in ("content-type", "x-cache", "cache-control", "www-authenticate")
    }
    return {"status": response.status_code, "headers": headers, "body": body}


async def _api_key(client: httpx.AsyncClient, scopes: list[str]) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {await login(client)}"}
    response = await client.post(
        "/v1/auth/api-keys", json={"name": "k", "scopes": scopes}, headers=admin
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


def _cases(auth: dict[str, str], reader: dict[str, str]) -> list[tuple[str, str, str, Headers]]:
    """(name, path, body, headers): the plain request and every way of not being plain."""
    cases: list[tuple[str, str, str, Headers]] = []
    for path in (INVOKE, STREAM):
        kind = path.rsplit("/", 1)[1]
        cases += [
            (f"{kind} plain", path, PLAIN, {**BYPASS, **auth}),
            (f"{kind} bad json", path, '{"input": ', {**JSON, **auth}),
            (f"{kind} not utf-8", path, '{"input": "\udcff"}', {**JSON, **auth}),
            (f"{kind} empty body", path, "", {**JSON, **auth}),
            (f"{kind} json null", path, "null", {**JSON, **auth}),
            (f"{kind} no content type", path, PLAIN, {"cache-control": "no-cache", **auth}),
            (f"{kind} text/plain", path, PLAIN, {"content-type": "text/plain", **auth}),
            (
                f"{kind} charset parameter",
                path,
                PLAIN,
                {**auth, **BYPASS, "content-type": "application/json; charset=utf-8"},
            ),
            (f"{kind} input not text", path, '{"input": []}', {**JSON, **auth}),
            (f"{kind} store not bool", path, '{"input": "x", "store": "no"}', {**JSON, **auth}),
            (
                f"{kind} bad session id",
                path,
                '{"input": "x", "session_id": "../"}',
                {**JSON, **auth},
            ),
            (
                f"{kind} unknown session",
                path,
                json.dumps({"input": "x", "session_id": "0" * 32}),
                {**JSON, **auth},
            ),
            (f"{kind} input too long", path, json.dumps({"input": "x" * 61}), {**JSON, **auth}),
            (f"{kind} no credentials", path, PLAIN, JSON),
            (f"{kind} missing scope", path, PLAIN, {**JSON, **reader}),
            (f"{kind} bad token", path, PLAIN, {**JSON, "Authorization": "Bearer nope"}),
        ]
    cases.append(("unknown agent", "/v1/agents/nope/invoke", PLAIN, {**JSON, **auth}))
    # OpenAI's routes read their own body: only the caller and headers are resolved.
    chat = {"model": "chat", "messages": [{"role": "user", "content": "Tell me about the sea"}]}
    answer = {"model": "chat", "input": "Tell me about the sea"}
    for kind, path, body in (("chat", CHAT, chat), ("responses", RESPONSES, answer)):
        cases += [
            (f"{kind} plain", path, json.dumps(body), {**BYPASS, **auth}),
            (f"{kind} streamed", path, json.dumps({**body, "stream": True}), {**BYPASS, **auth}),
            (f"{kind} bad json", path, '{"model": ', {**JSON, **auth}),
            (
                f"{kind} unknown agent",
                path,
                json.dumps({**body, "model": "nope"}),
                {**JSON, **auth},
            ),
            (f"{kind} no credentials", path, json.dumps(body), JSON),
            (f"{kind} missing scope", path, json.dumps(body), {**JSON, **reader}),
        ]
    return cases


async def _send(
    client: httpx.AsyncClient, path: str, body: str, headers: Headers
) -> httpx.Response:
    content = body.encode("utf-8", "surrogateescape")
    return await client.post(path, content=content, headers=headers)


async def test_both_paths_give_the_same_answers(client: AppClient, solves: list[str]) -> None:
    auth = {"Authorization": f"Bearer {await login(client)}"}
    reader = await _api_key(client, ["sessions:read"])
    cases = _cases(auth, reader)
    fast, solved_fast = {}, {}
    for name, path, body, headers in cases:
        before = len(solves)
        fast[name] = _answer(await _send(client, path, body, headers))
        solved_fast[name] = len(solves) > before
    client.app.dependency_overrides[get_runs] = get_runs  # any override: FastAPI solves
    solved = {name: _answer(await _send(client, path, body, h)) for name, path, body, h in cases}
    for name, *_ in cases:
        assert fast[name] == solved[name], name
    # The plain requests took the fast path (as did those refused once the body was read: an
    # unknown agent or session, an input too long); the others were solved by FastAPI (bad
    # JSON and bad tokens never get that far: FastAPI's body parsing, our middleware).
    fast_ones = {"plain", "unknown session", "input too long"}
    never_solved = {"bad json", "not utf-8", "bad token"}
    for kind in ("invoke", "stream"):
        for name in {name for name, *_ in cases if name.startswith(kind + " ")}:
            case = name.removeprefix(kind + " ")
            assert solved_fast[name] is (case not in fast_ones | never_solved), name
    assert not solved_fast["unknown agent"]
    for kind in ("chat", "responses"):  # their own body errors are theirs, past the resolver
        for case in ("plain", "streamed", "bad json", "unknown agent"):
            assert not solved_fast[f"{kind} {case}"], (kind, case)
        for case in ("no credentials", "missing scope"):
            assert solved_fast[f"{kind} {case}"], (kind, case)
    assert fast["invoke plain"]["status"] == 200 and fast["invoke plain"]["body"]["output"]
    assert fast["invoke plain"]["headers"]["x-cache"] == "BYPASS"
    assert [event["type"] for event in fast["stream plain"]["body"]][0] == "run_started"
    assert fast["stream plain"]["body"][-1]["type"] == "run_completed"
    assert fast["invoke bad json"]["status"] == 422
    assert fast["invoke no credentials"]["status"] == 401
    assert fast["invoke missing scope"]["status"] == 403
    assert fast["unknown agent"]["status"] == 404
    assert fast["invoke input too long"]["status"] == 422
    assert fast["chat plain"]["body"]["choices"][0]["message"]["content"]
    assert fast["chat streamed"]["body"][-1] == "[DONE]"
    assert fast["responses plain"]["body"]["status"] == "completed"
    assert fast["chat missing scope"]["status"] == 403


async def test_a_plain_request_skips_dependency_solving(
    client: AppClient, solves: list[str]
) -> None:
    auth = {"Authorization": f"Bearer {await login(client)}"}
    solves.clear()
    for path in (INVOKE, STREAM):
        response = await _send(client, path, PLAIN, {**JSON, **auth})
        assert response.status_code == 200, response.text
    chat = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    answer = await client.post(CHAT, json=chat, headers=auth)
    assert answer.status_code == 200 and answer.json()["object"] == "chat.completion"
    answer = await client.post(RESPONSES, json={"model": "chat", "input": "Hi"}, headers=auth)
    assert answer.status_code == 200 and answer.json()["object"] == "response"
    assert solves == []
    # A cache hit comes the same way, and says so.
    hit = await _send(client, INVOKE, PLAIN, {**JSON, **auth})
    assert hit.headers["x-cache"] == "HIT" and hit.json()["cached"] is True
    assert solves == []


async def test_a_plain_request_never_reaches_fastapis_router(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed: list[str] = []
    handle = APIRoute.handle

    async def counting(self: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counting)
    auth = {"Authorization": f"Bearer {await login(client)}"}
    routed.clear()  # the login's
    for path in (INVOKE, STREAM):
        response = await _send(client, path, PLAIN, {**BYPASS, **auth})
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"]  # it went through our middleware all the same
    chat = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    assert (await client.post(CHAT, json=chat, headers=auth)).status_code == 200
    assert routed == []
    # What the fast path declines, FastAPI routes and solves, the body it read replayed whole:
    # a session id FastAPI's own validation refuses by name, and a body it has to read itself.
    bad = await _send(client, INVOKE, '{"input": "x", "session_id": "../"}', {**JSON, **auth})
    assert bad.status_code == 422
    assert [error["loc"] for error in bad.json()["errors"]] == [["body", "session_id"]]
    charset = {**BYPASS, **auth, "content-type": "application/json; charset=utf-8"}
    answered = await _send(client, INVOKE, PLAIN, charset)
    assert answered.status_code == 200 and answered.json()["output"]
    # A method the route does not serve is FastAPI's 405, with what the path allows.
    wrong_method = await client.get(INVOKE, headers=auth)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert routed == [INVOKE, INVOKE, INVOKE]


async def test_a_dependency_override_is_honoured(client: AppClient, solves: list[str]) -> None:
    auth = {"Authorization": f"Bearer {await login(client)}"}
    services: AppServices = client.services
    calls: list[str] = []
    solves.clear()  # the login's

    async def counted_runs() -> Any:
        calls.append("runs")
        return services.runs

    client.app.dependency_overrides[get_runs] = counted_runs
    for path in (INVOKE, STREAM):
        response = await _send(client, path, PLAIN, {**BYPASS, **auth})
        assert response.status_code == 200, response.text
    assert calls == ["runs", "runs"]
    assert {path.rsplit("/", 1)[1] for path in solves} == {"invoke", "stream"}


async def test_a_body_cut_short_is_answered_as_before(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over the size limit without a Content-Length: the body limit answers 413 while the
    route reads the body; the fast path lets FastAPI's path take it (no error logged)."""
    async with app_client(make_settings(MAX_REQUEST_BODY_BYTES=1024)) as http:
        auth = {"Authorization": f"Bearer {await login(http)}"}

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"input": "'
            for _ in range(8):
                yield b"y" * 512
            yield b'"}'

        response = await http.post(INVOKE, content=chunks(), headers={**JSON, **auth})
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, "payload_too_large")
    assert log_lines(capsys.readouterr().out, "unhandled_exception") == []

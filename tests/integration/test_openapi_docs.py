"""The OpenAPI document and the docs pages, as a reader of /docs (or a client generator) uses
them: written summaries and descriptions, a schema for every error and event, examples that
work, and pages whose every asset this service serves itself (no CDN, nothing off-host).
The pages in a real browser with no internet: tests/e2e/test_docs_offline.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, get_args

import httpx
import pytest

from app.agents.events import Event
from app.core.problems import PROBLEM_CONTENT_TYPE
from tests.conftest import AppClient, SettingsFactory, app_client, login

REF = "#/components/schemas/"
METHODS = {"get", "post", "put", "patch", "delete"}
STREAMS = {
    ("/v1/agents/{agent}/stream", "post"): {"shutdown"},
    ("/v1/tasks/{task_id}/events", "get"): {"shutdown", "events_missed"},
}
# A readiness probe's 503 carries the per-dependency report, not a problem (app/api/health.py).
NOT_PROBLEMS = {("/health/ready", "get", "503"), ("/health", "get", "503")}
# Protocol surfaces whose clients parse errors in their own shape (their error dialect):
# path prefix -> the schema their errors are documented with, as plain JSON.
DIALECTS = {
    "/v1/models": "OpenAIErrorBody",
    "/v1/chat/completions": "OpenAIErrorBody",
    "/v1/responses": "OpenAIErrorBody",
    "/a2a": "JsonRpcErrorResponse",
}


def _error_shape(path: str) -> tuple[str, str]:
    """The content type and schema a path's errors are documented (and sent) with."""
    for prefix, schema in DIALECTS.items():
        if path.startswith(prefix):
            return "application/json", schema
    return PROBLEM_CONTENT_TYPE, "Problem"


AGENT_EVENT_TYPES = {member.model_fields["type"].default for member in get_args(get_args(Event)[0])}


@pytest.fixture
async def quick_client(make_settings: SettingsFactory) -> AsyncIterator[AppClient]:
    async with app_client(make_settings(OFFLINE_LATENCY_MS=0, OFFLINE_TOKENS_PER_SECOND=0)) as c:
        yield c


async def _spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].removeprefix(REF)]
    return schema


def _generated_summary(path: str, method: str, operation_id: str) -> str:
    """What FastAPI writes when a route has no summary: its function name in Title Case."""
    suffix = re.sub(r"\W", "_", path) + "_" + method
    assert operation_id.endswith(suffix), operation_id
    return operation_id.removesuffix(suffix).replace("_", " ").title()


# --- operations ---------------------------------------------------------------------------------


async def test_every_operation_has_a_written_summary_and_description(client: AppClient) -> None:
    spec = await _spec(client)
    operations = list(_operations(spec))
    assert len(operations) >= 31
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        summary = operation.get("summary", "")
        assert summary, f"{where} has no summary"
        assert summary != _generated_summary(path, method, operation["operationId"]), (
            f"{where}: {summary!r} is FastAPI's generated summary, not a written one"
        )
        description = operation.get("description", "").strip()
        assert len(description) >= 40, f"{where} has no description"


async def test_every_error_response_is_a_problem_with_its_schema(client: AppClient) -> None:
    spec = await _spec(client)
    for path, method, operation in _operations(spec):
        assert "500" in operation["responses"], f"{method.upper()} {path} documents no 500"
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, method, status) in NOT_PROBLEMS:
                continue
            where = f"{method.upper()} {path} {status}"
            content_type, schema = _error_shape(path)
            assert list(response["content"]) == [content_type], where
            media = response["content"][content_type]
            assert media["schema"] == {"$ref": REF + schema}, where
            assert response["description"], where
            for example in media.get("examples", {}).values():
                assert example["value"]["status"] == int(status), where
    for path, method, status in NOT_PROBLEMS:
        response = spec["paths"][path][method]["responses"][status]
        assert response["content"]["application/json"]["schema"] == {"$ref": REF + "Readiness"}


async def test_the_problem_schema_is_what_the_service_writes(client: AppClient) -> None:
    spec = await _spec(client)
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "request_id"}
    token = await login(client)
    answers = [
        # from a route handler, from the authentication middleware, from request validation
        await client.get("/v1/agents/chatbot", headers={"Authorization": f"Bearer {token}"}),
        await client.get("/v1/agents", headers={"Authorization": "Bearer not-a-token"}),
        await client.post(
            "/v1/agents/chat/invoke", json={}, headers={"Authorization": f"Bearer {token}"}
        ),
    ]
    for answer in answers:
        assert answer.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
        body = answer.json()
        assert set(problem["required"]) <= set(body), body
        assert set(body) <= set(problem["properties"]), f"undocumented members: {body}"
    assert {"loc", "msg", "type"} == set(answers[2].json()["errors"][0])


async def test_event_streams_document_every_event_and_their_framing(client: AppClient) -> None:
    spec = await _spec(client)
    for (path, method), notices in STREAMS.items():
        ok = spec["paths"][path][method]["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"], path
        union = _resolve(spec, ok["content"]["text/event-stream"]["schema"])
        assert union["discriminator"]["propertyName"] == "type"
        mapping = union["discriminator"]["mapping"]
        assert set(mapping) == AGENT_EVENT_TYPES | notices, path
        assert sorted(ref["$ref"] for ref in union["oneOf"]) == sorted(mapping.values())
        for event_type, ref in mapping.items():
            member = _resolve(spec, {"$ref": ref})
            assert "type" in member["required"], ref
            assert member["properties"]["type"].get("const") == event_type, ref
        for word in ("id:", "event:", "data:", "keep-alive", "shutdown"):
            assert word in ok["description"], f"{path}: framing does not mention {word!r}"
    tasks = spec["paths"]["/v1/tasks/{task_id}/events"]["get"]["responses"]["200"]
    assert "Last-Event-ID" in tasks["description"]


# --- examples -----------------------------------------------------------------------------------


def _agents_named(value: Any) -> Iterator[str]:
    """Every agent an example value names: an "agent" member anywhere inside it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "agent" and isinstance(item, str):
                yield item
            yield from _agents_named(item)
    elif isinstance(value, list):
        for item in value:
            yield from _agents_named(item)


def _examples(node: Any) -> Iterator[Any]:
    """Every example value in the document: schema ``examples`` lists, media type and
    parameter ``example``/``examples`` (named ones hold a ``value``)."""
    if isinstance(node, dict):
        for key, item in node.items():
            if key == "example":
                yield item
            elif key == "examples" and isinstance(item, list):
                yield from item
            elif key == "examples" and isinstance(item, dict):
                yield from (named.get("value") for named in item.values())
            else:
                yield from _examples(item)
    elif isinstance(node, list):
        for item in node:
            yield from _examples(item)


async def test_examples_name_only_registered_agents(client: AppClient) -> None:
    spec = await _spec(client)
    token = await login(client)
    listed = await client.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})
    registered = {agent["name"] for agent in listed.json()["items"]}
    named = [name for example in _examples(spec) for name in _agents_named(example)]
    for path, _method, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "agent":
                assert "example" in parameter, f"{path}: no example agent"
                named.append(parameter["example"])
    assert named, "no example names an agent"
    assert set(named) <= registered, f"examples name unknown agents: {set(named) - registered}"


async def test_the_run_examples_work_as_documented(quick_client: AppClient) -> None:
    """Each invoke example, sent to the agent its summary names, gets what it promises."""
    spec = await _spec(quick_client)
    headers = {"Authorization": f"Bearer {await login(quick_client)}"}
    body = spec["paths"]["/v1/agents/{agent}/invoke"]["post"]["requestBody"]
    examples = body["content"]["application/json"]["examples"]
    assert {example["summary"].split(":")[0] for example in examples.values()} == {
        "chat",
        "assistant",
        "approval",
    }
    for example in examples.values():
        agent = example["summary"].split(":")[0]
        answer = await quick_client.post(
            f"/v1/agents/{agent}/invoke", json=example["value"], headers=headers
        )
        if "stream only" in example["summary"]:
            assert answer.status_code == 409, answer.text
            assert answer.json()["code"] == "input_required_unsupported"
        else:
            assert answer.status_code == 200, answer.text
    calculated = await quick_client.post(
        "/v1/agents/assistant/invoke", json=examples["assistant"]["value"], headers=headers
    )
    assert "84" in calculated.json()["output"]


# --- the pages ----------------------------------------------------------------------------------

_URL = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ?'([^']+)'""")
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_pages_load_everything_from_this_service(client: AppClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    urls = [a or b for a, b in _URL.findall(html)]
    off_host = [url for url in urls if re.match(r"^([a-z]+:)?//", url)]
    assert off_host == [], f"{page} points off-host: {off_host}"
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        extension = re.search(r"\.[a-z]+(?=$|\?)", url)
        assert extension is not None, url
        assert asset.headers["content-type"].startswith(_TYPES[extension.group()]), url
    if page != "/docs/oauth2-redirect":
        assert any("/openapi.json" in url for url in urls) and len(urls) >= 3, urls

    csp = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert "http" not in response.headers["content-security-policy"], "a host is allowed"
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    for tag, body in _INLINE.findall(html):
        if tag == "script":
            assert _hash_source(body) in csp["script-src"], "an inline script would be blocked"


async def test_only_the_listed_assets_are_served(client: AppClient) -> None:
    for name in ("../core.py", "index.html", "swagger-ui-bundle.js.map", "%2e%2e%2fcore.py"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)


async def test_docs_switched_off_serve_no_page_and_no_asset(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(DOCS_ENABLED=False)) as client:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs/assets/swagger-ui.css"):
            assert (await client.get(path)).status_code == 404, path

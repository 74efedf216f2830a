"""Tracing in one process: the app with its real middleware chain, exporting over OTLP/HTTP to
a receiver on loopback. The app's lifespan ends with the provider's shutdown, which exports
everything still buffered, so once a test leaves ``traced_app`` the receiver has every span
the app made: an empty list there proves nothing was sampled, without waiting."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.core.config import Settings
from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support.fake_openai import Disconnect, FakeOpenAI, Status, Text
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.redis_server import RedisServer

INCOMING_TRACE = "0af7651916cd43dd8448eb211c80319c"
OTEL_VARIABLES = (
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        for name in OTEL_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        yield running


@asynccontextmanager
async def traced_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # create_app configures tracing before it builds the services (the LLM client is
    # instrumented when it is made), so no services are built ahead here.
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _tracing(make_settings: SettingsFactory, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"TRACING_ENABLED": True, "AUTH_ENABLED": False}
    return make_settings(**(values | overrides))


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, sorted(span.name for span in spans))
    return found[0]


def _parent(spans: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan:
    return next(s for s in spans if s.span_id == span.parent_span_id)


async def test_a_run_is_a_tree_of_server_agent_step_tool_and_model_spans(
    make_settings: SettingsFactory, receiver: OtlpReceiver
) -> None:
    async with traced_app(_tracing(make_settings)) as client:
        answer = await client.post("/v1/agents/assistant/invoke", json={"input": "What is 6*7?"})
        assert answer.status_code == 200, answer.text
    spans = receiver.spans
    server = _one(spans, "POST /v1/agents/{agent}/invoke")
    assert server.kind == "server" and server.parent_span_id == ""
    assert server.attributes["http.route"] == "/v1/agents/{agent}/invoke"
    assert server.attributes["url.path"] == "/v1/agents/assistant/invoke"
    agent = _one(spans, "invoke_agent assistant")
    assert _parent(spans, agent) == server
    assert agent.attributes["gen_ai.conversation.id"] == answer.json()["session_id"]
    assert agent.attributes["agent_service.run.id"] == answer.json()["run_id"]
    usage = answer.json()["usage"]
    assert agent.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    steps = sorted((s for s in spans if s.name == "step"), key=lambda s: s.start_ns)
    assert [_parent(spans, step) for step in steps] == [agent, agent]
    tool = _one(spans, "execute_tool calculator")
    assert _parent(spans, tool) == steps[0]
    chats = sorted((s for s in spans if s.name == "chat offline"), key=lambda s: s.start_ns)
    assert [_parent(spans, chat) for chat in chats] == steps
    assert chats[0].attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chats[1].attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert {span.trace_id for span in spans} == {server.trace_id}
    assert {span.service for span in spans} == {"agent-service"}


@pytest.mark.parametrize("latest", [False, True], ids=["v1.36", "latest"])
async def test_message_contents_are_recorded_only_when_opted_in(
    make_settings: SettingsFactory,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    latest: bool,
) -> None:
    if latest:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    async with traced_app(_tracing(make_settings)) as client:
        await client.post("/v1/agents/assistant/invoke", json={"input": "What is 6*7?"})
    first = list(receiver.spans)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    async with traced_app(_tracing(make_settings, CACHE_ENABLED=False)) as client:
        await client.post("/v1/agents/assistant/invoke", json={"input": "What is 6*7?"})
    second = receiver.spans[len(first) :]
    captured = sorted((s for s in second if s.name.startswith("chat")), key=lambda s: s.start_ns)
    tool = next(s for s in second if s.name == "execute_tool calculator")

    provider_key = "gen_ai.provider.name" if latest else "gen_ai.system"
    absent_key = "gen_ai.system" if latest else "gen_ai.provider.name"
    for span in first:  # not opted in: no text of the conversation anywhere
        assert not [key for key in span.attributes if "messages" in key or "call.arg" in key]
        assert not [name for name, _ in span.events if name.startswith("gen_ai.")]
    chat = captured[0]
    assert chat.attributes[provider_key] == "offline" and absent_key not in chat.attributes
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"expression": "6*7"}
    assert tool.attributes["gen_ai.tool.call.result"] == "42"
    if latest:
        messages = json.loads(chat.attributes["gen_ai.input.messages"])
        assert messages[-1] == {
            "role": "user",
            "parts": [{"type": "text", "content": "What is 6*7?"}],
        }
        assert "gen_ai.system_instructions" in chat.attributes
        output = json.loads(chat.attributes["gen_ai.output.messages"])
        assert output[0]["parts"][0]["type"] == "tool_call"
        assert not chat.events
    else:
        events = dict(chat.events)
        assert events["gen_ai.user.message"] == {"content": "What is 6*7?"}
        assert "gen_ai.system.message" in events
        assert events["gen_ai.choice"]["finish_reason"] == "tool_calls"
        assert "gen_ai.input.messages" not in chat.attributes


@pytest.mark.parametrize(
    ("sampler", "argument", "flags", "expect_spans"),
    [
        ("always_off", "", "01", False),
        ("traceidratio", "0", "01", False),  # no parent: the ratio decides alone
        ("parentbased_traceidratio", "0", "01", True),  # a sampled parent is followed
        ("parentbased_traceidratio", "0", "00", False),  # and an unsampled one too
        ("parentbased_always_on", "", "00", False),
    ],
)
async def test_the_sampler_from_the_environment_is_obeyed(
    make_settings: SettingsFactory,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    argument: str,
    flags: str,
    expect_spans: bool,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", argument)
    traceparent = f"00-{INCOMING_TRACE}-b7ad6b7169203331-{flags}"
    async with traced_app(_tracing(make_settings, TRACING_TRUST_INCOMING="all")) as client:
        response = await client.post(
            "/v1/agents/chat/invoke", json={"input": "hi"}, headers={"traceparent": traceparent}
        )
        assert response.status_code == 200
    if expect_spans:
        assert {span.trace_id for span in receiver.spans} == {INCOMING_TRACE}
        assert {"POST /v1/agents/{agent}/invoke", "invoke_agent chat", "chat offline"} <= {
            span.name for span in receiver.spans
        }
    else:
        assert receiver.spans == []


@pytest.mark.parametrize(
    ("trust", "proxies", "believed"),
    [
        ("all", "10.0.0.0/8", True),
        ("none", "127.0.0.1", False),
        ("proxies", "127.0.0.1", True),  # the peer (127.0.0.1) is a trusted proxy
        ("proxies", "10.0.0.0/8", False),  # a client straight from the internet
    ],
)
async def test_an_incoming_traceparent_is_believed_only_from_whom_the_settings_trust(
    make_settings: SettingsFactory,
    receiver: OtlpReceiver,
    trust: str,
    proxies: str,
    believed: bool,
) -> None:
    settings = _tracing(make_settings, TRACING_TRUST_INCOMING=trust, FORWARDED_ALLOW_IPS=proxies)
    traceparent = f"00-{INCOMING_TRACE}-b7ad6b7169203331-01"
    async with traced_app(settings) as client:
        await client.get("/v1/agents", headers={"traceparent": traceparent})
    server = _one(receiver.spans, "GET /v1/agents")
    if believed:
        assert (server.trace_id, server.parent_span_id) == (INCOMING_TRACE, "b7ad6b7169203331")
        assert server.links == []
    else:  # a trace of our own, linked to the one the client claimed
        assert server.trace_id != INCOMING_TRACE and server.parent_span_id == ""
        assert server.links == [INCOMING_TRACE]


async def test_server_spans_are_named_by_route_template_and_probes_are_not_traced(
    make_settings: SettingsFactory, receiver: OtlpReceiver
) -> None:
    async with traced_app(_tracing(make_settings)) as client:
        assert (await client.get("/v1/runs/0123456789abcdef")).status_code == 404
        assert (await client.get("/no/such/path/42")).status_code == 404
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    names = sorted(span.name for span in receiver.spans)
    assert names == ["GET", "GET /v1/runs/{run_id}"]
    unmatched = _one(receiver.spans, "GET")
    assert "http.route" not in unmatched.attributes
    assert unmatched.attributes["http.response.status_code"] == 404


async def test_a_streamed_run_ends_its_server_span_when_the_stream_ends(
    make_settings: SettingsFactory, receiver: OtlpReceiver
) -> None:
    settings = _tracing(make_settings, OFFLINE_TOKENS_PER_SECOND=200)
    async with traced_app(settings) as client:
        response = await client.post("/v1/agents/chat/stream", json={"input": "tell me more"})
        assert response.status_code == 200 and "run_completed" in response.text
    server = _one(receiver.spans, "POST /v1/agents/{agent}/stream")
    agent = _one(receiver.spans, "invoke_agent chat")
    assert agent.parent_span_id == server.span_id
    assert server.end_ns >= agent.end_ns  # the span covered the whole body, not the head
    assert server.attributes["http.response.status_code"] == 200


async def test_request_durations_carry_the_trace_id_as_an_openmetrics_exemplar(
    make_settings: SettingsFactory, receiver: OtlpReceiver
) -> None:
    async with traced_app(_tracing(make_settings)) as client:
        await client.get("/v1/agents")
        openmetrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        text = await client.get("/metrics")
    trace_id = _one(receiver.spans, "GET /v1/agents").trace_id
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = [
        line
        for line in openmetrics.text.splitlines()
        if line.startswith("http_request_duration_seconds_bucket") and 'route="/v1/agents"' in line
    ]
    assert any(f'trace_id="{trace_id}"' in line for line in exemplars), exemplars
    assert text.headers["content-type"].startswith("text/plain")
    assert trace_id not in text.text  # the text format has no exemplars


async def test_a_cached_answer_is_marked_and_the_redis_lookup_is_its_child(
    make_settings: SettingsFactory, receiver: OtlpReceiver, redis_server: RedisServer
) -> None:
    settings = _tracing(make_settings, REDIS_URL=redis_server.url, CACHE_LOCAL_SECONDS=0)
    async with traced_app(settings) as client:
        for _ in range(2):
            response = await client.post("/v1/agents/chat/invoke", json={"input": "same"})
            assert response.status_code == 200
    chats = sorted(
        (s for s in receiver.spans if s.name == "chat offline"), key=lambda s: s.start_ns
    )
    assert [chat.attributes["agent_service.llm.cache"] for chat in chats] == ["miss", "hit"]
    assert [chat.attributes["agent_service.llm.cached"] for chat in chats] == [False, True]
    lookups = [s for s in receiver.spans if s.name == "GET llmcache"]
    assert sorted(_parent(receiver.spans, s).span_id for s in lookups) == sorted(
        chat.span_id for chat in chats
    )
    stored = _one(receiver.spans, "SET llmcache")
    assert stored.parent_span_id == chats[0].span_id  # written once, by the miss


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Disconnect(chunks=["Partial", " answer"]), "llm_unavailable"),  # after tokens
        (Status(400), "llm_rejected"),  # before any: the span's first step fails
        (Text(chunks=["Fine", "."], finish_reason="stop"), None),
    ],
    ids=["mid-stream", "first-step", "answered"],
)
async def test_a_chat_span_ends_with_the_calls_outcome(
    make_settings: SettingsFactory, receiver: OtlpReceiver, reply: Any, error: str | None
) -> None:
    with FakeOpenAI() as fake:
        fake.script(reply)
        settings = _tracing(
            make_settings,
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=fake.url,
            OPENAI_MODEL="gpt-test",
            OPENAI_API_KEY="sk-test-tracing",
            OPENAI_MAX_RETRIES=0,
        )
        async with traced_app(settings) as client:
            response = await client.post(
                "/v1/agents/chat/invoke", json={"input": "hi", "store": False}
            )
    assert (response.status_code == 200) == (error is None), response.text
    chat = _one(receiver.spans, "chat gpt-test")
    assert _parent(receiver.spans, chat).name == "step"
    if error is None:
        assert chat.status_code != 2
        assert chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert chat.attributes["gen_ai.usage.output_tokens"] == 2
    else:
        assert (chat.status_code, chat.attributes["error.type"]) == (2, error)
        assert "gen_ai.response.finish_reasons" not in chat.attributes
    assert chat.end_ns >= chat.start_ns


async def test_log_lines_carry_the_active_trace_and_span(
    make_settings: SettingsFactory, receiver: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    async with traced_app(_tracing(make_settings)) as client:
        await client.get("/v1/agents")
    server = _one(receiver.spans, "GET /v1/agents")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line[:1]]
    access = [line for line in lines if line.get("route") == "/v1/agents"]
    assert access and access[0]["trace_id"] == server.trace_id
    assert access[0]["span_id"] == server.span_id
    startup = next(line for line in lines if line.get("event") == "startup")
    assert "trace_id" not in startup  # no span was active

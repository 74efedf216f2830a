"""Traces across real processes, read by a real OTLP/HTTP receiver.

A test client (its own tracer, the OpenTelemetry SDK) submits a task to an API process; a
separate worker process runs it with a tool call and streamed calls to an OpenAI-compatible
server. One trace must hold all three processes in the right parent-child order, the
upstream model call must carry that trace's ``traceparent``, log lines must name it, and no
message content may be recorded (nobody opted in). Then: a run held by one API replica and
cancelled through another keeps the asking request's trace across the control bus.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.e2e.conftest import login
from tests.support.fake_openai import FakeOpenAI, Text, ToolCalls
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame, parse_lines
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def _tracing_env(receiver: OtlpReceiver, redis: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis.url,
        "REDIS_KEY_PREFIX": f"e2e-tracing-{uuid.uuid4().hex[:8]}:",
        "TRACING_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
        "RATE_LIMIT_ENABLED": "false",
        **extra,
    }


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
    found = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]
    return sorted(found, key=lambda span: span.start_ns)


def _child(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> ReceivedSpan:
    found = _children(spans, parent, name)
    names = sorted(s.name for s in spans if s.parent_span_id == parent.span_id)
    assert len(found) == 1, f"{parent.name} should have one {name!r} child; has {names}"
    return found[0]


def _client_tracer(receiver: OtlpReceiver) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "test-client"}))
    exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_a_task_is_one_trace_across_the_client_the_api_and_the_worker(
    receiver: OtlpReceiver, redis_server: RedisServer
) -> None:
    redis_server.start()
    with ExitStack() as stack:
        fake = stack.enter_context(FakeOpenAI())
        fake.script(
            ToolCalls([("call_1", "calculator", ['{"expression"', ': "6*7"}'])]),
            Text(["The answer", " is 42."], prompt_tokens=20, completion_tokens=4),
        )
        env = _tracing_env(
            receiver,
            redis_server,
            WORKER_ENABLED="false",
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=fake.url,
            OPENAI_MODEL="gpt-test",
            OPENAI_API_KEY="sk-test-tracing",
        )
        api = stack.enter_context(ServerProcess(env=env))
        worker = WorkerProcess(env=env)
        stack.callback(worker.close)
        worker.start()
        token = login(api.url)

        client = _client_tracer(receiver)
        with client.get_tracer("tests").start_as_current_span(
            "client submit", kind=SpanKind.CLIENT
        ) as root:
            headers = {
                "Authorization": f"Bearer {token}",
                # Through a proxy on loopback (FORWARDED_ALLOW_IPS): its traceparent counts.
                "X-Forwarded-For": "203.0.113.9",
            }
            TraceContextTextMapPropagator().inject(headers)
            response = httpx.post(
                f"{api.url}/v1/tasks",
                json={"agent": "assistant", "input": "What is 6*7?"},
                headers=headers,
                timeout=10,
            )
        client.shutdown()
        assert response.status_code == 202, response.text
        trace_id = format(root.get_span_context().trace_id, "032x")

        def finished(spans: list[ReceivedSpan]) -> bool:
            # Each process exports on its own schedule: wait for the last span each ends (a
            # server span ends after its children, so it may come in a later batch).
            names = {s.name for s in spans if s.trace_id == trace_id}
            return {"client submit", "POST /v1/tasks", "process tasks"} <= names

        receiver.wait_for(finished)
        spans = receiver.trace(trace_id)

        client_span = next(s for s in spans if s.name == "client submit")
        assert client_span.service == "test-client"
        server = _child(spans, client_span, "POST /v1/tasks")
        assert (server.kind, server.service) == ("server", "agent-service")
        assert server.attributes["http.route"] == "/v1/tasks"
        assert server.attributes["client.address"] == "203.0.113.9"
        assert server.attributes["http.response.status_code"] == 202
        send = _child(spans, server, "send tasks")
        assert send.kind == "producer"
        process = _child(spans, send, "process tasks")
        assert (process.kind, process.service) == ("consumer", "agent-service-worker")
        agent = _child(spans, process, "invoke_agent assistant")
        assert agent.attributes["gen_ai.system"] == "openai"
        assert agent.attributes["agent_service.run.status"] == "completed"
        assert agent.attributes["gen_ai.usage.input_tokens"] == 11 + 20
        first, second = _children(spans, agent, "step")
        assert [
            first.attributes["agent_service.step.number"],
            second.attributes["agent_service.step.number"],
        ] == [1, 2]
        tool = _child(spans, first, "execute_tool calculator")
        assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
        assert tool.status_code != 2  # the tool worked

        asked = _child(spans, first, "chat gpt-test")
        assert asked.kind == "client"
        assert asked.attributes["gen_ai.request.model"] == "gpt-test"
        assert asked.attributes["gen_ai.response.model"] == "gpt-test"
        assert asked.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
        assert asked.attributes["gen_ai.usage.input_tokens"] == 11
        assert asked.attributes["gen_ai.usage.output_tokens"] == 9
        assert asked.attributes["agent_service.llm.cached"] is False
        assert asked.attributes["server.address"] == "127.0.0.1"
        answered = _child(spans, second, "chat gpt-test")
        assert answered.attributes["gen_ai.usage.output_tokens"] == 4
        # The cache is looked up in Redis inside the model call's span.
        assert _child(spans, asked, "GET llmcache").attributes["db.system.name"] == "redis"

        # The upstream request carries this trace, its parent the httpx client span.
        upstream = _child(spans, asked, "POST")
        assert upstream.kind == "client"
        version, traced, parent, flags = fake.requests[0].headers["traceparent"].split("-")
        assert (version, traced, parent) == ("00", trace_id, upstream.span_id)
        assert int(flags, 16) & 1  # sampled (the SDK may also set level 2's "random" bit)
        assert fake.requests[1].headers["traceparent"].split("-")[1] == trace_id

        # Nobody opted in to message contents.
        for span in spans:
            assert not CONTENT_KEYS & span.attributes.keys(), span.name
            assert not [name for name, _ in span.events if name.startswith("gen_ai.")], span.name

        # The API's access log line names the trace and its server span.
        access = [line for line in api.json_lines() if line.get("route") == "/v1/tasks"]
        assert access and access[0]["trace_id"] == trace_id
        assert access[0]["span_id"] == server.span_id
        assert access[0]["client"] == "203.0.113.9"


def _open_stream(server: ServerProcess, token: str) -> tuple[httpx.Response, Iterator[Frame]]:
    client = httpx.Client(base_url=server.url, timeout=30)
    request = client.build_request(
        "POST",
        "/v1/agents/approval/stream",
        json={"input": "Drop the cache"},
        headers={"Authorization": f"Bearer {token}"},
    )
    response = client.send(request, stream=True)
    return response, parse_lines(response.iter_lines())


def test_a_cancel_through_another_replica_continues_its_trace_in_the_holder(
    receiver: OtlpReceiver, redis_server: RedisServer
) -> None:
    redis_server.start()
    # No proxy in front: a traceparent from a client is not believed (a link instead).
    env = _tracing_env(receiver, redis_server, FORWARDED_ALLOW_IPS="10.1.1.1")
    with ServerProcess(env=env) as holder, ServerProcess(env=env) as other:
        token = login(holder.url)
        response, frames = _open_stream(holder, token)
        run_id = response.headers["x-run-id"]
        next(frame for frame in frames if frame.event == "input_required")

        incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        cancelled = httpx.post(
            f"{other.url}/v1/runs/{run_id}/cancel",
            headers={"Authorization": f"Bearer {token}", "traceparent": incoming},
            timeout=10,
        )
        assert cancelled.status_code == 202, cancelled.text
        end = next(frame for frame in frames if frame.event in ("error", "run_completed"))
        assert end.event == "error"
        response.close()

        spans = receiver.wait_for(
            lambda got: (
                any(s.name == "process run-control" for s in got)
                and any(s.name == "POST /v1/runs/{run_id}/cancel" for s in got)
            )
        )
        ask = next(s for s in spans if s.name == "POST /v1/runs/{run_id}/cancel")
        assert ask.trace_id != "0af7651916cd43dd8448eb211c80319c"  # not the client's trace
        assert ask.parent_span_id == ""
        assert ask.links == ["0af7651916cd43dd8448eb211c80319c"]  # but linked to it
        handled = next(s for s in spans if s.name == "process run-control")
        assert (handled.trace_id, handled.parent_span_id) == (ask.trace_id, ask.span_id)
        assert handled.kind == "consumer"
        assert handled.attributes["agent_service.run.id"] == run_id
        assert handled.attributes["agent_service.control.action"] == "cancel"
        # The holder and the asker are different processes.
        assert handled.resource["service.instance.id"] != ask.resource["service.instance.id"]
        run = receiver.wait_for(lambda got: any(s.name == "invoke_agent approval" for s in got))
        agent = next(s for s in run if s.name == "invoke_agent approval")
        assert agent.attributes["agent_service.run.status"] == "cancelled"
        assert agent.status_code != 2  # a cancel is no error

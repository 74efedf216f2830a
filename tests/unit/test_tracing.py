"""Tracing's pieces that need no server: what off costs, a missing extra, whose traceparent is
believed, the conventions the environment picks, and where a task keeps its context."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import app.observability as observability
from app.core.config import Settings
from app.core.settings_loader import ConfigError
from app.observability import tracing
from app.observability.tracing_genai import GenAIConventions
from app.store.run_records import RunRecord, from_fields, to_fields

ROOT = Path(__file__).resolve().parents[2]


def test_with_tracing_off_nothing_of_the_sdk_is_imported_and_no_middleware_runs() -> None:
    script = textwrap.dedent(
        """
        import sys
        from app.core.config import Settings
        from app.main import create_app
        from app.middleware.tracing import TracingMiddleware
        app = create_app(Settings(_env_file=None))
        # (redis-py 8 imports the SDK's metrics package by itself when it is installed.)
        loaded = sorted(m for m in sys.modules if m.startswith((
            "opentelemetry.sdk.trace", "opentelemetry.exporter",
            "opentelemetry.instrumentation", "app.observability.tracing_",
        )))
        chain = [m.cls for m in app.user_middleware]
        print(loaded, TracingMiddleware in chain)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[] False"


def test_tracing_on_without_the_extra_is_one_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Forget the setup module wherever an earlier test left it: `from package import module`
    # finds an imported submodule as the package's attribute without looking at sys.modules.
    monkeypatch.delitem(sys.modules, "app.observability.tracing_setup", raising=False)
    monkeypatch.delattr(observability, "tracing_setup", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigError) as raised:
        tracing.configure_tracing(Settings(_env_file=None, TRACING_ENABLED=True), role="api")
    message = str(raised.value)
    assert 'pip install "agent-service[tracing]"' in message and "\n" not in message
    assert not tracing.enabled()


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "zipkin is not available"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf only"),
    ],
)
def test_an_exporter_the_extra_cannot_serve_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=fragment):
        tracing.configure_tracing(Settings(_env_file=None, TRACING_ENABLED=True), role="api")
    assert not tracing.enabled()


def test_trusted_peers_read_forwarded_allow_ips_like_uvicorn() -> None:
    from app.observability.tracing_http import TrustedPeers

    peers = TrustedPeers("127.0.0.1, 10.0.0.0/8,fd00::/8 , /run/proxy.sock")
    assert "127.0.0.1" in peers and "10.20.30.40" in peers and "fd00::1" in peers
    assert "/run/proxy.sock" in peers
    assert "203.0.113.9" not in peers and "not-an-ip" not in peers and None not in peers
    assert "203.0.113.9" in TrustedPeers("*")


@pytest.mark.parametrize(
    ("peer", "client", "believed"),
    [
        (("127.0.0.1", 1), ("203.0.113.9", 2), True),  # forwarded by our ingress
        (("203.0.113.9", 1), ("127.0.0.1", 2), False),  # a client that claims to be local
        (None, ("127.0.0.1", 2), True),  # no proxy in between: the client is the peer
    ],
)
def test_proxies_mode_looks_at_the_direct_peer_not_the_forwarded_client(
    peer: tuple[str, int] | None, client: tuple[str, int], believed: bool
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from app.observability.tracing_http import ServerSpans, TrustedPeers

    spans = ServerSpans(
        TracerProvider().get_tracer("t"), trust="proxies", trusted=TrustedPeers("127.0.0.1")
    )
    scope = {"client": client, **({tracing.PEER_SCOPE_KEY: peer} if peer else {})}
    assert spans.believes(scope, tracing.PEER_SCOPE_KEY) is believed


@pytest.mark.parametrize(
    ("environ", "latest", "capture"),
    [
        ({}, False, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup, gen_ai_latest_experimental"}, True, False),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "TRUE"}, False, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}, False, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "no_content"}, False, False),
    ],
)
def test_the_environment_picks_the_genai_conventions_and_content_capture(
    environ: dict[str, str], latest: bool, capture: bool
) -> None:
    conventions = GenAIConventions.from_env(environ)
    assert (conventions.latest, conventions.capture_content) == (latest, capture)
    assert conventions.provider_key == ("gen_ai.provider.name" if latest else "gen_ai.system")


def test_a_task_record_keeps_the_submitters_trace_context_through_redis_fields() -> None:
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    record = RunRecord(id="t1", owner="user:a", agent="chat", input="x", trace_context=carrier)
    assert from_fields(to_fields(record)).trace_context == carrier
    untraced = RunRecord(id="t2", owner="user:a", agent="chat", input="x")
    assert from_fields(to_fields(untraced)).trace_context is None


def test_hooks_are_inert_while_tracing_is_off() -> None:
    tracing.configure_tracing(Settings(_env_file=None), role="api")
    headers: dict[str, str] = {}
    tracing.inject_trace_headers(headers)
    assert headers == {}
    assert tracing.current_carrier() is None
    assert tracing.start_run(agent="a", run_id="r", session_id=None, provider="p") is None
    assert tracing.exemplar() is None
    with tracing.tool_span(None, name="t", call_id="c", arguments={}) as span:
        assert span is None


@pytest.mark.parametrize(
    ("environment", "queue", "batch"),
    [
        ({}, 8192, 2048),  # ours: the SDK's 2,048 / 512 were too small at 100 % sampling
        ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100"}, 2048, 100),  # one set: the SDK's rules
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "1000"}, 1000, 512),  # never a batch over the queue
    ],
)
def test_span_batches_are_ours_unless_the_standard_variables_say(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], queue: int, batch: int
) -> None:
    from opentelemetry.sdk.trace.export import SpanExporter

    from app.observability.tracing_setup import _batch_processor

    for name in ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    processor = _batch_processor(SpanExporter())
    try:
        batching = processor._batch_processor  # noqa: SLF001 - the SDK keeps them private
        assert (batching._max_queue_size, batching._max_export_batch_size) == (queue, batch)  # noqa: SLF001
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("environment", "kind"),
    [
        ({}, "LeanTracer"),  # our spans, read by our OTLP exporter
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "Tracer"),  # the console prints SDK spans
        ({"OTEL_SDK_DISABLED": "true"}, "NoOpTracer"),  # the SDK's own off switch holds
    ],
)
def test_our_spans_are_lean_unless_an_sdk_span_is_needed(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], kind: str
) -> None:
    from app.observability.tracing_setup import build

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    active = build(Settings(_env_file=None, TRACING_ENABLED=True), role="api")
    try:
        assert type(active.tracer).__name__ == kind
    finally:
        active.shutdown()


def test_a_consumed_message_is_traced_whatever_the_ambient_request_sampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.observability.tracing import SAMPLED_OUT
    from app.observability.tracing_setup import build

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    active = build(Settings(_env_file=None, TRACING_ENABLED=True), role="worker")
    sampled = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    outer = SAMPLED_OUT.set(True)  # as inside a request whose server span was sampled out
    try:
        assert active.unsampled() and active.exemplar() is None
        with active.consumer("tasks", message_id="t1", carrier=sampled, attributes={}) as span:
            assert span.is_recording()
            assert not active.unsampled()  # its children are made
            assert active.exemplar() is not None
        assert active.unsampled()  # the request's own decision again
    finally:
        SAMPLED_OUT.reset(outer)
        active.shutdown()

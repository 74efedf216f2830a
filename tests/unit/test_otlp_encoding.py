"""Our OTLP span encoder writes the message the library's encoder writes.

Both encodings of the same real SDK spans are parsed with ``opentelemetry-proto`` and must
be equal, field for field: every attribute value type (negative and 64-bit ints, floats,
booleans, unicode, lists, strings longer than a one-byte length), events, links from a
remote context, statuses, trace state, several scopes and resources. Then the exporter
built on it sends to a real OTLP/HTTP receiver, gzip included, and refuses an oversized
batch as the library does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as library
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from app.observability.otlp_encoding import encode_spans
from app.observability.otlp_export import FastOTLPSpanExporter
from tests.support.otlp_receiver import OtlpReceiver


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _provider(kept: _Keep, **resource: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    return provider


@pytest.fixture
def spans() -> Iterator[list[ReadableSpan]]:
    kept = _Keep()
    first = _provider(kept, **{"service.name": "api", "pods": 3, "ratio": 0.5, "on": True})
    second = _provider(kept, **{"service.name": "worker", "zones": ["a", "b"]})
    tracer = first.get_tracer("agent-service", "1.2.3")
    same_scope = first.get_tracer("agent-service", "1.2.3")  # another object, equal
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "opaque"), ("other", "x")]),
    )
    with tracer.start_as_current_span(
        "POST /v1/agents/{agent}/invoke",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={
            "text": "héllo wörld ✓",
            "long": "x" * 300,  # a two-byte length
            "negative": -5,
            "big": 2**62,
            "ratio": 0.25,
            "flag": False,
            "names": ["a", "b"],
            "numbers": [1, 2, 3],
            "empty": "",
        },
    ) as root:
        with same_scope.start_as_current_span("step", attributes={"step": 1}) as step:
            step.add_event("gen_ai.client.inference.operation.details", {"n": 1})
            step.add_event("")
            step.set_status(StatusCode.ERROR, "step_failed")
        with first.get_tracer("other-scope").start_as_current_span(
            "execute_tool lookup", links=[Link(remote, {"why": "untrusted"})]
        ) as tool:
            tool.set_status(StatusCode.OK)
        tracer.start_span("", kind=SpanKind.CONSUMER).end()
        root.set_attribute("http.response.status_code", 200)
    second.get_tracer("agent-service").start_span("process tasks", kind=SpanKind.CONSUMER).end()
    yield kept.spans
    first.shutdown()
    second.shutdown()


def _parsed(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def test_our_encoding_is_the_librarys_message(spans: list[ReadableSpan]) -> None:
    assert len(spans) == 5
    ours, theirs = _parsed(encode_spans(spans)), _parsed(library(spans).SerializeToString())
    assert ours == theirs
    assert [len(r.scope_spans) for r in ours.resource_spans] == [2, 1]  # equal scopes merged


def test_each_span_alone_encodes_the_same(spans: list[ReadableSpan]) -> None:
    for span in spans:
        assert _parsed(encode_spans([span])) == _parsed(library([span]).SerializeToString())


def test_an_attribute_without_an_otlp_form_is_left_out_as_the_library_does() -> None:
    kept = _Keep()
    provider = _provider(kept, **{"service.name": "api"})
    with provider.get_tracer("agent-service").start_as_current_span("s") as span:
        span.set_attribute("fits", 2**63 - 1)
        span.set_attribute("too_big", 2**64)  # the SDK keeps it; int64 cannot hold it
    provider.shutdown()
    ours = _parsed(encode_spans(kept.spans))
    assert ours == _parsed(library(kept.spans).SerializeToString())
    assert [a.key for a in ours.resource_spans[0].scope_spans[0].spans[0].attributes] == ["fits"]


def test_no_spans_is_an_empty_request() -> None:
    assert encode_spans([]) == b""
    assert _parsed(b"") == library([])


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_exporter_delivers_to_a_receiver(
    spans: list[ReadableSpan], compression: Compression
) -> None:
    with OtlpReceiver() as receiver:
        exporter = FastOTLPSpanExporter(
            endpoint=f"{receiver.url}/v1/traces", compression=compression
        )
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        got = receiver.wait_for(lambda received: len(received) == 5)
    by_name = {span.name: span for span in got}
    root = by_name["POST /v1/agents/{agent}/invoke"]
    assert root.kind == "server" and root.parent_span_id == "b7ad6b7169203331"
    assert root.attributes["long"] == "x" * 300 and root.attributes["big"] == 2**62
    assert by_name["step"].status_code == 2 and by_name["execute_tool lookup"].links
    assert {span.service for span in got} == {"api", "worker"}


def test_an_oversized_batch_is_refused_unsent(spans: list[ReadableSpan]) -> None:
    with OtlpReceiver() as receiver:
        exporter = FastOTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", max_request_size=64)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        exporter.shutdown()  # type: ignore[no-untyped-call]
        assert exporter.export(spans) is SpanExportResult.FAILURE  # shut down: the library's
        assert receiver.requests == 0


def test_equal_values_of_other_types_keep_their_own_encoding() -> None:
    """Encoded attributes are cached by value: (1,) == (True,) and 1 == 1.0 == True in
    Python, yet OTLP writes each kind of value its own way."""
    kept = _Keep()
    provider = _provider(kept, **{"service.name": "api"})
    tracer = provider.get_tracer("agent-service")
    values: list[Any] = [(1,), (True,), (1.0,), 1, True, 1.0, ("1",), "1"]
    for value in values * 2:
        tracer.start_span("s", attributes={"same.key": value}).end()
    provider.shutdown()
    assert _parsed(encode_spans(kept.spans)) == _parsed(library(kept.spans).SerializeToString())
    decoded = [
        span.attributes[0].value
        for span in _parsed(encode_spans(kept.spans)).resource_spans[0].scope_spans[0].spans
    ]
    assert len({value.SerializeToString() for value in decoded}) == 8

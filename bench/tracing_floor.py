"""The OpenTelemetry libraries' own floor: what creating and ending one span costs in this
process, and what encoding it as OTLP protobuf adds, with the library's encoder and with ours
(app/observability/otlp_encoding.py, which the service exports with), so the tracing
benchmark can say how much of its 100 % cost is the SDK's and how much the encoding's.
Measured with spans shaped like the ones the run sent (their mean attribute count, distinct
values per span as a run's ids are), through a BatchSpanProcessor (its queueing is in the
floor) whose exporter drops the spans, or encodes them (as ``OTLPSpanExporter`` does before
its HTTP POST, or with ours) and then drops the bytes. Process CPU time, so the processor's
thread counts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from app.observability.otlp_encoding import encode_spans as our_encode_spans


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _LibraryEncodes(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


class _OursEncodes(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        our_encode_spans(spans)
        return SpanExportResult.SUCCESS


@dataclass(frozen=True, slots=True)
class Floor:
    sdk_us: float  # start + end of one span, batched, dropped
    library_encoded_us: float  # the same, encoded by the OTLP exporter's encoder
    ours_encoded_us: float  # the same, encoded by ours

    @property
    def library_encoding_us(self) -> float:
        return max(self.library_encoded_us - self.sdk_us, 0.0)

    @property
    def our_encoding_us(self) -> float:
        return max(self.ours_encoded_us - self.sdk_us, 0.0)


def _span_us(exporter: SpanExporter, attributes: int, spans: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=spans))
    tracer = provider.get_tracer("floor")
    shaped = {f"attribute.{index}": "value-of-some-length" for index in range(attributes - 1)}
    try:
        started = time.process_time()
        for number in range(spans):
            tracer.start_span("chat model", attributes={**shaped, "id": str(number)}).end()
        provider.force_flush()  # the export of every span is in the measurement
        return (time.process_time() - started) / spans * 1e6
    finally:
        provider.shutdown()


def library_floor(attributes: int, *, spans: int = 10_000, rounds: int = 5) -> Floor:
    """Median CPU microseconds per span: without encoding, with the library's, with ours;
    measured in alternation so a busy machine's drift hits all alike."""
    samples: list[list[float]] = [[], [], []]
    for _ in range(rounds):
        for index, exporter in enumerate((_Drop(), _LibraryEncodes(), _OursEncodes())):
            samples[index].append(_span_us(exporter, max(attributes, 1), spans))
    sdk, library, ours = (sorted(values)[rounds // 2] for values in samples)
    return Floor(sdk, library, ours)

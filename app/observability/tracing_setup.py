"""The tracer provider, built from the standard OpenTelemetry environment; imported only when
TRACING_ENABLED (it needs the ``tracing`` extra).

What the SDK reads itself: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (over our
defaults: service.name ``agent-service`` or ``agent-service-worker``), ``OTEL_TRACES_SAMPLER``
and ``OTEL_TRACES_SAMPLER_ARG`` (default parentbased_always_on), ``OTEL_BSP_*`` (batching),
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``_HEADERS``, ``_TIMEOUT``, ``_COMPRESSION``,
``OTEL_PROPAGATORS`` (default tracecontext,baggage). What we read: ``OTEL_TRACES_EXPORTER``
(otlp, console or none; a list is allowed) and ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``
(http/protobuf, the one protocol the extra ships). Spans are exported from a background
thread (BatchSpanProcessor): a request only queues its ended spans.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

import httpx
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, TraceFlags

from app.core.config import Settings
from app.core.settings_loader import ConfigError
from app.observability.fast_context import current_span
from app.observability.lean_spans import LeanSpan, LeanTracer
from app.observability.tracing import SAMPLED_OUT, ChatOutcome
from app.observability.tracing_genai import ChatRequestLike, GenAIConventions
from app.observability.tracing_http import ServerSpans, TrustedPeers
from app.observability.tracing_llm import TracedChat
from app.observability.tracing_runs import RunTrace

T = TypeVar("T")
SCOPE = "agent-service"
SERVICE_NAMES = {"api": "agent-service", "worker": "agent-service-worker"}


def build(settings: Settings, *, role: str) -> Tracing:
    provider = TracerProvider(resource=_resource(settings, role))  # sampler: OTEL_TRACES_*
    batches: list[SpanProcessor] = []
    names = _exporter_names()
    for name in names:
        if name == "otlp":
            batches.append(_batch_processor(_otlp_exporter()))
            provider.add_span_processor(batches[-1])
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    # Our own spans are LeanSpans (app/observability/lean_spans.py), which our OTLP exporter
    # reads; the console exporter prints SDK spans, so with it ours are the SDK's too, and
    # with OTEL_SDK_DISABLED the SDK's no-op tracer is.
    tracer = provider.get_tracer(SCOPE)
    if "console" not in names and not isinstance(tracer, trace.NoOpTracer):
        tracer = LeanTracer(provider, scope=SCOPE, processors=batches)
    # Libraries with their own OpenTelemetry spans (a framework an adapter serves) join our
    # traces through the global provider; it can be set once per process.
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return Tracing(
        provider,
        tracer,
        genai=GenAIConventions.from_env(),
        server=ServerSpans(
            tracer,
            trust=settings.TRACING_TRUST_INCOMING,
            trusted=TrustedPeers(settings.FORWARDED_ALLOW_IPS),
        ),
    )


# Our defaults where the SDK's (a queue of 2,048, batches of 512) were measured too small
# for a service at 100 % sampling: 4 spans a request at 1,000 requests a second fill the
# SDK's queue in half a second, and each POST costs about a millisecond of the process's
# CPU whatever its size (bench/tracing_overhead.py: batches of 2,048 cut tracing's cost by
# a third). Either standard variable set: both are the SDK's to read (a queue set smaller
# than our batch would be refused).
BATCH_DEFAULTS = {"OTEL_BSP_MAX_QUEUE_SIZE": 8192, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 2048}


def _batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    if any(name in os.environ for name in BATCH_DEFAULTS):
        return BatchSpanProcessor(exporter)
    return BatchSpanProcessor(
        exporter,
        max_queue_size=BATCH_DEFAULTS["OTEL_BSP_MAX_QUEUE_SIZE"],
        max_export_batch_size=BATCH_DEFAULTS["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
    )


def _resource(settings: Settings, role: str) -> Resource:
    ours = {
        "service.name": SERVICE_NAMES.get(role, SCOPE),
        "service.version": settings.API_VERSION,
        "deployment.environment.name": settings.ENVIRONMENT,
    }
    # Resource.create puts explicit attributes over the environment's; we want the reverse.
    return Resource.create(ours).merge(OTELResourceDetector().detect())


def _exporter_names() -> list[str]:
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    unknown = sorted(set(names) - {"otlp", "console", "none", ""})
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not available; use otlp, console "
            "or none"
        )
    return names


def _otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol.strip() not in ("", "http/protobuf"):
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: the tracing extra exports OTLP over "
            "http/protobuf only (point it at the collector's HTTP port, 4318)"
        )
    from app.observability.otlp_export import FastOTLPSpanExporter

    return FastOTLPSpanExporter()


class Tracing:
    """The active tracing of this process: what app/observability/tracing.py delegates to."""

    def __init__(
        self,
        provider: TracerProvider,
        tracer: trace.Tracer,
        *,
        genai: GenAIConventions,
        server: ServerSpans,
    ) -> None:
        self.provider = provider
        self.tracer = tracer
        self.genai = genai
        self.server = server

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor holds

    # -- propagation ------------------------------------------------------------------------
    def inject(self, headers: MutableMapping[str, str]) -> None:
        propagate.inject(headers)

    def carrier(self) -> dict[str, str] | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier or None

    # -- spans ------------------------------------------------------------------------------
    @staticmethod
    def unsampled() -> bool:
        """The current span exists and is not recorded: its children would not be either
        (every standard sampler follows an in-process parent that was not sampled, or
        decides by the same trace id), so they are not made at all. This keeps a 1 %
        sampler from paying for the 99 % it drops: only the request's root span is."""
        if SAMPLED_OUT.get():  # the request's own sampling said no: known without a lookup
            return True
        span = current_span()
        if isinstance(span, LeanSpan):  # valid by construction
            return span.end_time is not None
        return span.get_span_context()[5] and not span.is_recording()  # [5]: is valid

    @contextlib.contextmanager
    def producer(self, destination: str, *, message_id: str) -> Iterator[Span | None]:
        if self.unsampled():  # the context to store is the current one, as it is
            yield None
            return
        attributes = {
            "messaging.operation.type": "send",
            "messaging.destination.name": destination,
            "messaging.message.id": message_id,
        }
        with self.tracer.start_as_current_span(
            f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            yield span

    @contextlib.contextmanager
    def consumer(
        self,
        destination: str,
        *,
        message_id: str,
        carrier: Mapping[str, str] | None,
        attributes: Mapping[str, str | int],
    ) -> Iterator[Span]:
        # The stored context is the parent; nothing ambient in this process is.
        parent = propagate.extract(dict(carrier or {}), context=otel_context.Context())
        with self.tracer.start_as_current_span(
            f"process {destination}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.operation.type": "process",
                "messaging.destination.name": destination,
                "messaging.message.id": message_id,
                **attributes,
            },
        ) as span:
            # Its own trace's sampling decides below it, not an ambient request's.
            sampled_out = SAMPLED_OUT.set(not span.is_recording())
            try:
                yield span
            finally:
                SAMPLED_OUT.reset(sampled_out)

    @contextlib.contextmanager
    def redis(self, operation: str, target: str) -> Iterator[Span | None]:
        if self.unsampled():
            yield None
            return
        attributes = {"db.system.name": "redis", "db.operation.name": operation}
        with self.tracer.start_as_current_span(
            f"{operation} {target}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield span

    def start_run(
        self, *, agent: str, run_id: str, session_id: str | None, provider: str
    ) -> RunTrace | None:
        if self.unsampled():
            return None
        return RunTrace(
            self.tracer,
            self.genai,
            attributes=self.genai.agent_attributes(
                agent=agent, run_id=run_id, session_id=session_id, provider=provider
            ),
        )

    def chat(
        self,
        items: AsyncGenerator[T, None],
        *,
        provider: str,
        request: ChatRequestLike,
        server: str | None,
        cacheable: bool,
        outcome: ChatOutcome,
    ) -> AsyncGenerator[T, None]:
        # A sampled call only: chat_outcome() made no outcome for an unsampled one.
        return TracedChat(
            self.tracer,
            self.genai,
            items,
            provider=provider,
            request=request,
            server=server,
            cacheable=cacheable,
            outcome=outcome,
        )

    def instrument_httpx(self, client: httpx.AsyncClient) -> None:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider)

    # -- logs and metrics -------------------------------------------------------------------
    def add_ids(self, event_dict: MutableMapping[str, Any]) -> None:
        span = current_span()
        if span is INVALID_SPAN:
            return
        ids = _hex_ids(span)
        if ids is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids

    def exemplar(self) -> dict[str, str] | None:
        span = current_span()
        if span is INVALID_SPAN or not span.get_span_context()[3] & _SAMPLED:
            return None
        ids = _hex_ids(span)
        return None if ids is None else {"trace_id": ids[0], "span_id": ids[1]}


_SAMPLED = TraceFlags.SAMPLED


def _hex_ids(span: Span) -> tuple[str, str] | None:
    """The span's trace and span id as hex, None for an invalid context; a LeanSpan keeps
    them (its request's log lines and exemplar each name it). A SpanContext is a tuple:
    trace id, span id, ..., valid last."""
    if isinstance(span, LeanSpan):
        ids = span.hex_ids
        if ids is None:
            context = span.context
            ids = span.hex_ids = (format(context[0], "032x"), format(context[1], "016x"))
        return ids
    context = span.get_span_context()
    if not context[5]:
        return None
    return format(context[0], "032x"), format(context[1], "016x")

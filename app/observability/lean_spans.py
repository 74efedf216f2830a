"""Our own spans, recorded for the OTLP exporter without the SDK's per-span machinery.

The OpenTelemetry SDK's span costs a request more than everything else tracing does
(``bench/tracing_floor.py``: 35 us to start and end one on the bench machine, four per
request, +23 % of a full-chain invoke before any export): every attribute is validated
under a lock into a bounded mapping, the span is copied into a second object when it ends,
and each start and end goes through the processor multiplexer and the SDK's own metrics.
Our spans (server, ``invoke_agent``, ``step``, ``chat``, ``execute_tool``, the queue's and
Redis') set attributes whose names and types we wrote, so ``LeanTracer`` keeps what a span
must be and no more: the provider's sampler (``OTEL_TRACES_SAMPLER``) decides exactly as it
decides for the SDK, ids come from the provider's generator, the resource and
instrumentation scope are the provider's, and an ended sampled span goes to the provider's
batch processor, whose exporter (ours, app/observability/otlp_export.py) reads it as it
reads an SDK span. A ``LeanSpan`` is an ``opentelemetry.trace.Span`` to everyone else: other
instrumentations (httpx, a framework an adapter serves) start their SDK spans under it
through the context, and ours start under theirs.

Not kept: span limits (our spans carry a dozen attributes; the SDK's default limit is 128)
and the SDK's self-metrics. It is used only when the OTLP exporter is the only one
(tracing_setup.py); the console exporter gets SDK spans.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from random import getrandbits
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from app.observability.fast_context import current_span
from app.observability.sampling_shortcuts import follows_sampled_parents, root_decision
from app.observability.span_queue import span_sink

UNSET_STATUS = Status(StatusCode.UNSET)
_SAMPLED, _RANDOM_TRACE_ID = TraceFlags.SAMPLED, TraceFlags.RANDOM_TRACE_ID
# (sampled, random trace id) -> the flags the SDK sets for them
_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}
# SpanContext(...) without its Python __new__ (a call per span): our spans' ids are valid by
# construction (never 0, in range: the generator's, or a valid parent's trace id), and
# validity is all that __new__ works out. Fields in SpanContext's own tuple order.
_new_context = tuple.__new__


class LeanSpan:
    """A recording span; what the exporter reads has the names of the SDK's ReadableSpan.

    Each tracer makes its own subclass (LeanTracer.__init__) whose class attributes are the
    resource, the instrumentation scope and where ended spans go, and the fields every span
    starts with (no events, status unset, not ended) are class attributes too: a span sets
    only what is its own. Not __slots__: an instance's dict holds those, set or not."""

    resource: Resource
    instrumentation_scope: InstrumentationScope
    _sinks: tuple[Callable[[LeanSpan], None], ...] = ()
    dropped_attributes = dropped_events = dropped_links = 0
    events: Sequence[Event] = ()
    status = UNSET_STATUS
    end_time: int | None = None
    hex_ids: tuple[str, str] | None = None  # made once, for log lines and exemplars

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
        start_time: int | None,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.start_time = start_time or time_ns()

    # -- the API's Span ---------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self.end_time is None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.end_time is None:
            self.attributes.update(attributes)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is None:
            event = Event(name, dict(attributes or {}), timestamp or time_ns())
            self.events = [*self.events, event]

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self.end_time is None and context.is_valid:
            self.links = [*self.links, Link(context, attributes)]

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: UNSET is ignored, and OK is final.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded = {
            "exception.type": (
                f"{module}.{kind.__qualname__}"
                if module and module != "builtins"
                else kind.__qualname__
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time_ns()
        for sink in self._sinks:
            sink(self)

    def __enter__(self) -> LeanSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: object,
    ) -> None:
        if exc is not None and self.end_time is None:  # as the SDK's span, by default
            self.record_exception(exc, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self.end()


trace.Span.register(LeanSpan)  # what trace.get_current_span() accepts from a context


class LeanTracer(trace.Tracer):
    def __init__(
        self, provider: TracerProvider, *, scope: str, processors: Sequence[SpanProcessor]
    ) -> None:
        self._sampler = provider.sampler
        self._follows_sampled_parents = follows_sampled_parents(provider.sampler)
        self._root_decision = root_decision(provider.sampler)
        self._ids = provider.id_generator
        self._random_ids = self._ids.is_trace_id_random()
        self._default_ids = type(self._ids) is RandomIdGenerator
        # Every span of this tracer is of its own subclass, whose class attributes name the
        # resource, the scope and where the span goes when it ends (LeanSpan says why).
        sinks = tuple(span_sink(processor) for processor in processors)
        self._span_type: type[LeanSpan] = type(
            "LeanSpan",
            (LeanSpan,),
            {
                "resource": provider.resource,
                "instrumentation_scope": InstrumentationScope(scope),  # as get_tracer's
                "_sinks": sinks,
            },
        )
        # A span a sampler records but does not sample (no standard one does that) is
        # handed to the processors' own on_end, which leaves it out of the export.
        self._unsampled_sinks: tuple[Callable[[LeanSpan], None], ...] = tuple(
            processor.on_end  # type: ignore[misc]  # a LeanSpan reads as a ReadableSpan
            for processor in processors
        )

    def _span_id(self) -> int:
        return (self._default_ids and getrandbits(64)) or self._ids.generate_span_id()

    def _dropped(self, trace_id: int, random: bool, state: TraceState | None) -> trace.Span:
        """A span the sampler did not keep: its context is propagated, nothing recorded."""
        flags = _FLAGS[False, random]
        state = DEFAULT_TRACE_STATE if state is None else state
        return NonRecordingSpan(
            _new_context(SpanContext, (trace_id, self._span_id(), False, flags, state, True))
        )

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        # A SpanContext is a tuple (trace id, span id, is remote, flags, state, is valid):
        # read by index, each of its properties is a Python call (a dozen a span, else).
        # The default generator's ids come from random.getrandbits (0 only by a chance of
        # 2**-64, when the generator's own loop is asked): called here, a call less an id.
        parent_span = current_span(context)
        parent = None if parent_span is INVALID_SPAN else parent_span.get_span_context()
        if parent is not None and parent[5]:
            trace_id, flags = parent[0], parent[3]
            random = flags & _RANDOM_TRACE_ID != 0
            if flags & _SAMPLED and not parent[2] and self._follows_sampled_parents:
                # What the sampler would answer, without asking it (follows_sampled_parents):
                # the common case, a child of a request's span, made here in one go.
                span_id = (self._default_ids and getrandbits(64)) or self._ids.generate_span_id()
                return self._span_type(  # type: ignore[return-value]  # a registered Span
                    name,
                    _new_context(
                        SpanContext,
                        (trace_id, span_id, False, _FLAGS[True, random], parent[4], True),
                    ),
                    parent,
                    kind,
                    dict(attributes) if attributes else {},
                    links or (),
                    start_time,
                )
        else:
            parent = None
            trace_id = (self._default_ids and getrandbits(128)) or self._ids.generate_trace_id()
            random = self._random_ids
            decide = self._root_decision
            if decide is not None:  # a root, decided by its trace id (root_decision)
                if not decide(trace_id):
                    return self._dropped(trace_id, random, None)
                return self._recorded(
                    name, trace_id, True, random, None, parent, kind, attributes, links, start_time
                )
        result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
        if result.decision is Decision.DROP:
            return self._dropped(trace_id, random, result.trace_state)
        # The sampler's attributes are the span's (the standard ones hand ours back).
        return self._recorded(
            name,
            trace_id,
            result.decision is Decision.RECORD_AND_SAMPLE,
            random,
            result.trace_state,
            parent,
            kind,
            result.attributes,
            links,
            start_time,
        )

    def _recorded(
        self,
        name: str,
        trace_id: int,
        sampled: bool,
        random: bool,
        state: TraceState | None,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        links: Sequence[Link] | None,
        start_time: int | None,
    ) -> trace.Span:
        context = _new_context(
            SpanContext,
            (
                trace_id,
                self._span_id(),
                False,
                _FLAGS[sampled, random],
                DEFAULT_TRACE_STATE if state is None else state,
                True,
            ),
        )
        span = self._span_type(
            name,
            context,
            parent,
            kind,
            dict(attributes) if attributes else {},
            links or (),
            start_time,
        )
        if not sampled:
            span._sinks = self._unsampled_sinks  # noqa: SLF001 - its own tracer's choice
        return span  # type: ignore[return-value]  # a registered trace.Span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current

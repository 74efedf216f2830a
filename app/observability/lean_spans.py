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
from opentelemetry.sdk.trace import Event, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
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

UNSET_STATUS = Status(StatusCode.UNSET)
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
    """A recording span; what the exporter reads has the names of the SDK's ReadableSpan."""

    __slots__ = (
        "_processors",
        "attributes",
        "context",
        "end_time",
        "events",
        "instrumentation_scope",
        "kind",
        "links",
        "name",
        "parent",
        "resource",
        "start_time",
        "status",
    )
    dropped_attributes = dropped_events = dropped_links = 0

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
        tracer: LeanTracer,
        start_time: int | None,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.events: list[Event] = []
        self.status = UNSET_STATUS
        self.resource = tracer.resource
        self.instrumentation_scope = tracer.instrumentation_scope
        self._processors = tracer.processors
        self.start_time = start_time or time_ns()
        self.end_time: int | None = None

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
            self.events.append(Event(name, dict(attributes or {}), timestamp or time_ns()))

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
        for processor in self._processors:
            processor.on_end(self)  # type: ignore[arg-type]  # read as a ReadableSpan

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


def follows_sampled_parents(sampler: Sampler) -> bool:
    """Whether ``sampler`` samples every child of a sampled parent made in this process,
    with the parent's trace state and the child's own attributes. True of every sampler
    OTEL_TRACES_SAMPLER can name but ``always_off`` (which samples no parent): always on,
    a trace-id ratio (the child has its parent's trace id, so its decision), and ParentBased
    with its default for a sampled local parent. Asking such a sampler for each child of a
    request cost about 3 us a span; it is asked only for roots and remote parents then."""
    if sampler is ALWAYS_ON or isinstance(sampler, TraceIdRatioBased):
        return True
    # ParentBased keeps its delegates private; its description names them.
    return isinstance(sampler, ParentBased) and (
        "localParentSampled:AlwaysOnSampler" in sampler.get_description()  # type: ignore[no-untyped-call]
    )


def _always(_trace_id: int) -> bool:
    return True


def _never(_trace_id: int) -> bool:
    return False


def root_decision(sampler: Sampler) -> Callable[[int], bool] | None:
    """What ``sampler`` decides for a span without a parent (a request's server span), as a
    function of its trace id, when it is one OTEL_TRACES_SAMPLER names; None for any other
    (it is asked). For a root the standard samplers answer no trace state and the span's
    own attributes, so their answer is this one bit; asking cost a root span about 3 us,
    sampled or not (a 1 % sampler asks for every request)."""
    if type(sampler) in (ParentBased, ParentBasedTraceIdRatio):
        sampler = getattr(sampler, "_root", None)  # type: ignore[assignment]  # private
    if sampler is ALWAYS_ON:
        return _always
    if sampler is ALWAYS_OFF:
        return _never
    if type(sampler) is TraceIdRatioBased:
        bound, limit = sampler.bound, sampler.TRACE_ID_LIMIT
        return lambda trace_id: trace_id & limit < bound
    return None


class LeanTracer(trace.Tracer):
    def __init__(
        self, provider: TracerProvider, *, scope: str, processors: Sequence[SpanProcessor]
    ) -> None:
        self._sampler = provider.sampler
        self._follows_sampled_parents = follows_sampled_parents(provider.sampler)
        self._root_decision = root_decision(provider.sampler)
        self._ids = provider.id_generator
        self._random_ids = self._ids.is_trace_id_random()
        # The default generator's ids are random.getrandbits' (never 0): called directly,
        # a Python call less for each id.
        self._default_ids = type(self._ids) is RandomIdGenerator
        self.resource = provider.resource
        self.instrumentation_scope = InstrumentationScope(scope)  # as provider.get_tracer's
        self.processors = tuple(processors)

    def _trace_id(self) -> int:
        return (self._default_ids and getrandbits(128)) or self._ids.generate_trace_id()

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
        links = links or ()
        parent_span = current_span(context)
        parent: SpanContext | None = (
            None if parent_span is INVALID_SPAN else parent_span.get_span_context()
        )
        if parent is not None and parent.is_valid:
            trace_id, random = parent.trace_id, parent.trace_flags.random_trace_id
        else:
            parent, trace_id = None, self._trace_id()
            random = self._random_ids
        if (
            self._follows_sampled_parents
            and parent is not None
            and parent.trace_flags.sampled
            and not parent.is_remote
        ):  # what the sampler would answer, without asking it (see follows_sampled_parents)
            sampled = True
            trace_state: TraceState | None = parent.trace_state
            recorded = dict(attributes) if attributes else {}
        elif parent is None and self._root_decision is not None:
            sampled = self._root_decision(trace_id)
            if not sampled:
                return self._dropped(trace_id, random, None)
            trace_state = None
            recorded = dict(attributes) if attributes else {}
        else:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
            if result.decision is Decision.DROP:
                return self._dropped(trace_id, random, result.trace_state)
            sampled = result.decision is Decision.RECORD_AND_SAMPLE
            trace_state = result.trace_state
            # The sampler's attributes are the span's (the standard ones hand ours back).
            recorded = dict(result.attributes) if result.attributes else {}
        flags = _FLAGS[sampled, random]
        state = DEFAULT_TRACE_STATE if trace_state is None else trace_state
        span_context = _new_context(
            SpanContext, (trace_id, self._span_id(), False, flags, state, True)
        )
        span = LeanSpan(name, span_context, parent, kind, recorded, links, self, start_time)
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

"""Lean spans are SDK spans to everyone who reads them.

The same operations on an SDK span and on a LeanSpan (attributes of every kind, an event, a
link, a status, an escaped exception, a parent) encode to the same OTLP message but for ids
and times, parsed with ``opentelemetry-proto``; SDK spans started under a lean one are its
children and the other way round; the shortcut that skips the sampler for children of a
sampled local parent, and the one that decides a root by its trace id, answer what each
standard sampler answers (another sampler is asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

from app.observability.lean_spans import LeanTracer
from app.observability.otlp_encoding import encode_spans
from app.observability.sampling_shortcuts import follows_sampled_parents, root_decision
from tests.unit.test_otlp_encoding import _Keep

SCOPE = "agent-service"


def _tracers(sampler: Sampler | None = None) -> tuple[trace.Tracer, LeanTracer, _Keep]:
    kept = _Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "api"}), sampler=sampler)
    processor = SimpleSpanProcessor(kept)
    provider.add_span_processor(processor)
    return (
        provider.get_tracer(SCOPE),
        LeanTracer(provider, scope=SCOPE, processors=[processor]),
        kept,
    )


def _exercise(tracer: trace.Tracer) -> None:
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "x")]),
    )
    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    span = tracer.start_span(
        "POST /v1/agents/{agent}/invoke",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "ratio": 0.25},
        links=[Link(remote, {"why": "untrusted"})],
    )
    span.set_attributes({"n": -(2**40), "on": True, "names": ("stop", "length"), "no": None})
    span.set_attribute("text", "héllo " * 40)
    span.add_event("gen_ai.client.inference.operation.details", {"k": "v"}, timestamp=5)
    span.set_status(StatusCode.ERROR, "step_failed")
    span.set_status(StatusCode.UNSET)  # ignored, as the SDK does
    span.update_name("POST /v1/agents/{agent}/stream")
    span.end()
    span.set_attribute("late", 1)  # after the end: ignored
    with pytest.raises(ValueError, match="boom"):  # noqa: PT012 - the span is the subject
        with tracer.start_as_current_span("execute_tool calculator", context=parent):
            raise ValueError("boom")
    with pytest.raises(KeyError):  # noqa: PT012 - a span used directly as a context manager
        with tracer.start_span("step", context=parent):
            raise KeyError("missing")


def _message(spans: Sequence[ReadableSpan]) -> list[dict[str, Any]]:
    parsed = ExportTraceServiceRequest()
    parsed.ParseFromString(encode_spans(spans))
    found = []
    for resource in parsed.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                fields = MessageToDict(span)
                for key in ("spanId", "startTimeUnixNano", "endTimeUnixNano"):
                    fields.pop(key)
                for event in fields.get("events", []):
                    event.pop("timeUnixNano", None)
                    for attribute in event.get("attributes", []):
                        if attribute["key"] == "exception.stacktrace":  # its own frames
                            attribute["value"] = {"stringValue": "..."}
                found.append(fields)
    return found


def test_a_lean_span_encodes_as_the_same_sdk_span_would() -> None:
    sdk, lean, kept = _tracers()
    _exercise(sdk)
    sdk_spans = list(kept.spans)
    kept.spans.clear()
    _exercise(lean)
    assert len(kept.spans) == len(sdk_spans) == 3
    assert _message(kept.spans) == _message(sdk_spans)
    failed = _message(kept.spans)[1]
    assert failed["status"] == {"code": "STATUS_CODE_ERROR", "message": "ValueError: boom"}
    assert [event["name"] for event in failed["events"]] == ["exception"]


def test_sdk_spans_start_under_lean_ones_and_lean_under_sdk() -> None:
    sdk, lean, kept = _tracers()
    with lean.start_as_current_span("chat offline") as outer:
        with sdk.start_as_current_span("POST") as inner:  # an httpx client span, say
            with lean.start_as_current_span("GET llmcache") as leaf:
                assert trace.get_current_span() is leaf
    outer_id = outer.get_span_context()
    assert inner.get_span_context().trace_id == outer_id.trace_id
    by_name = {span.name: span for span in kept.spans}
    assert by_name["POST"].parent.span_id == outer_id.span_id  # type: ignore[union-attr]
    assert by_name["GET llmcache"].parent.span_id == inner.get_span_context().span_id  # type: ignore[union-attr]
    assert trace.get_current_span() is trace.INVALID_SPAN  # every context restored


@pytest.mark.parametrize(
    "sampler",
    [
        ALWAYS_ON,
        ParentBased(ALWAYS_ON),
        ParentBased(TraceIdRatioBased(0.5)),
        TraceIdRatioBased(0.5),
        ALWAYS_OFF,
        ParentBased(ALWAYS_OFF),
    ],
    ids=lambda sampler: sampler.get_description(),
)
def test_children_are_sampled_as_the_sampler_itself_decides(sampler: Sampler) -> None:
    _, lean, _ = _tracers(sampler)
    for _ in range(200):
        root = lean.start_span("server", attributes={"a": 1})
        context = trace.set_span_in_context(root)
        child = lean.start_span("step", context=context, attributes={"b": 2})
        asked = sampler.should_sample(
            context, root.get_span_context().trace_id, "step", SpanKind.INTERNAL, {"b": 2}
        )
        made = child.get_span_context()
        assert made.trace_flags.sampled == (asked.decision is Decision.RECORD_AND_SAMPLE)
        assert child.is_recording() == (asked.decision is not Decision.DROP)
        if child.is_recording():
            assert made.trace_state == asked.trace_state
        child.end()
        root.end()


def test_only_samplers_that_follow_a_sampled_parent_skip_the_question() -> None:
    assert follows_sampled_parents(ALWAYS_ON)
    assert follows_sampled_parents(ParentBased(TraceIdRatioBased(0.1)))
    assert follows_sampled_parents(TraceIdRatioBased(0.1))
    assert not follows_sampled_parents(ALWAYS_OFF)
    assert not follows_sampled_parents(ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF))


@pytest.mark.parametrize(
    "sampler",
    [
        ALWAYS_ON,
        ALWAYS_OFF,
        TraceIdRatioBased(0.25),
        ParentBased(ALWAYS_ON),
        ParentBased(ALWAYS_OFF),
        ParentBasedTraceIdRatio(0.25),
        ParentBased(TraceIdRatioBased(0.25)),
    ],
    ids=lambda sampler: sampler.get_description(),
)
def test_roots_are_sampled_as_the_sampler_itself_decides(sampler: Sampler) -> None:
    assert root_decision(sampler) is not None  # each is answered without asking
    _, lean, kept = _tracers(sampler)
    decisions = []
    for _ in range(400):
        root = lean.start_span("server", attributes={"a": 1})
        made = root.get_span_context()
        asked = sampler.should_sample(None, made.trace_id, "server", SpanKind.SERVER, {"a": 1})
        sampled = asked.decision is Decision.RECORD_AND_SAMPLE
        assert made.trace_flags.sampled == root.is_recording() == sampled
        assert made.trace_state == (asked.trace_state or TraceState())
        decisions.append(sampled)
        root.end()
    assert len(kept.spans) == sum(decisions)
    if "TraceIdRatioBased" in sampler.get_description():
        assert 0 < sum(decisions) < len(decisions)  # both answers were exercised
    assert all(span.attributes == {"a": 1} for span in kept.spans)


def test_other_samplers_are_asked_for_roots() -> None:
    class EveryOther(Sampler):
        def __init__(self) -> None:
            self.asked = 0

        def should_sample(self, *args: Any, **kwargs: Any) -> Any:
            self.asked += 1
            return (ALWAYS_ON if self.asked % 2 else ALWAYS_OFF).should_sample(*args, **kwargs)

        def get_description(self) -> str:
            return "EveryOther"

    sampler = EveryOther()
    assert root_decision(sampler) is None
    _, lean, _ = _tracers(sampler)
    recorded = [lean.start_span("server").is_recording() for _ in range(4)]
    assert recorded == [True, False, True, False]
    assert sampler.asked == 4


def test_span_contexts_are_what_the_api_would_make() -> None:
    """LeanTracer builds its SpanContexts without the API's ``__new__``: the same tuple."""
    for sampler in (ALWAYS_ON, ALWAYS_OFF):
        tracer = _tracers(sampler)[1]
        for state in (None, TraceState([("vendor", "value")])):
            parent = SpanContext(0x1234ABCD, 0x42, True, TraceFlags(TraceFlags.SAMPLED), state)
            remote = trace.set_span_in_context(trace.NonRecordingSpan(parent))
            for context in (None, remote):
                ours = tracer.start_span("x", context=context).get_span_context()
                theirs = SpanContext(
                    ours.trace_id,
                    ours.span_id,
                    False,
                    trace_flags=ours.trace_flags,
                    trace_state=None if context is None else state,
                )
                assert type(ours) is SpanContext and tuple(ours) == tuple(theirs)
                assert ours.is_valid and not ours.is_remote

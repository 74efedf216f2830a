"""Our one-step context functions give the OpenTelemetry API's answers.

The current span in every kind of context (none, an empty one, a value that is not a span,
a lean span, an SDK span under it, a remote parent handed in), a context with a span set
(the given one or the current one, the others' values kept, neither changed), attach and
detach in order and a detach of a token from another context, which is logged and not
raised, as the API does it; and the fast path is the one in use here.
"""

from __future__ import annotations

import contextvars
import logging

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags

from app.observability import fast_context
from app.observability.fast_context import (
    attach,
    current_context,
    current_span,
    detach,
    with_span,
)
from app.observability.lean_spans import LeanTracer

SPAN_KEY = trace.propagation._SPAN_KEY  # noqa: SLF001 - the key the API reads


def _tracers() -> tuple[trace.Tracer, LeanTracer]:
    provider = TracerProvider()
    return provider.get_tracer("t"), LeanTracer(provider, scope="t", processors=[])


def test_the_default_runtime_context_takes_the_fast_path() -> None:
    assert fast_context.FAST


def test_the_current_span_is_the_apis_answer_in_every_context() -> None:
    sdk, lean = _tracers()
    assert current_span() is trace.get_current_span() is trace.INVALID_SPAN
    assert current_span(otel_context.Context()) is trace.INVALID_SPAN
    stray = otel_context.set_value(SPAN_KEY, "not a span")  # someone else's value
    assert current_span(stray) is trace.get_current_span(stray) is trace.INVALID_SPAN
    with lean.start_as_current_span("server") as outer:
        assert current_span() is trace.get_current_span() is outer
        with sdk.start_as_current_span("POST") as inner:
            assert current_span() is trace.get_current_span() is inner
        remote = trace.NonRecordingSpan(
            SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        )
        given = trace.set_span_in_context(remote)
        assert current_span(given) is trace.get_current_span(given) is remote
        assert current_span() is outer
    assert current_span() is trace.INVALID_SPAN


def test_a_context_with_a_span_is_the_apis_and_changes_nothing() -> None:
    _, lean = _tracers()
    span = lean.start_span("step")
    base = otel_context.set_value("tenant", "acme")
    made = with_span(span, base)
    assert made == trace.set_span_in_context(span, base)
    assert isinstance(made, otel_context.Context)
    assert otel_context.get_value("tenant", made) == "acme"
    assert SPAN_KEY not in base  # the given context is left as it was
    token = otel_context.attach(base)
    try:
        assert with_span(span) == trace.set_span_in_context(span)  # on the current one
        assert current_context() is otel_context.get_current() is base
    finally:
        otel_context.detach(token)


def test_attach_and_detach_restore_the_context_in_order() -> None:
    _, lean = _tracers()
    before = otel_context.get_current()
    first = attach(with_span(lean.start_span("a")))
    second = attach(otel_context.set_value("k", 1))
    assert otel_context.get_value("k") == 1
    detach(second)
    assert current_span().get_span_context().is_valid  # "a" is current again
    detach(first)
    assert otel_context.get_current() is before


def test_a_token_from_another_context_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = contextvars.copy_context().run(attach, otel_context.Context())
    with caplog.at_level(logging.ERROR, logger="app.observability.fast_context"):
        detach(token)  # made in another context: reset refuses it
    assert "Failed to detach context" in caplog.text

"""What the standard samplers would answer, known without asking them.

LeanTracer (app/observability/lean_spans.py) asks these once, when it is made: asking the
sampler itself cost about 3 us a span, sampled or not. tests/unit/test_lean_spans.py holds
each shortcut to the sampler's own answers. Imported only when tracing is on.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)


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

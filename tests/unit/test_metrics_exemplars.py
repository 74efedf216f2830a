"""A duration observed with an exemplar by our short path is what the library's own
``observe(amount, exemplar)`` records: the same buckets, sum and count, and the exemplar on
the bucket the amount falls in (its labels and value), in every bucket including +Inf."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from app.observability.metrics import observe_with_exemplar

BUCKETS = (0.005, 0.1, 1)
EXEMPLAR = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}


def _samples(histogram: Histogram) -> list[tuple[str, dict[str, str], float, Any]]:
    return [
        (
            sample.name,
            sample.labels,
            sample.value,
            None if sample.exemplar is None else (sample.exemplar.labels, sample.exemplar.value),
        )
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]


def test_our_exemplar_observation_is_the_librarys() -> None:
    theirs = Histogram("d", "", ["route"], buckets=BUCKETS, registry=CollectorRegistry())
    ours = Histogram("d", "", ["route"], buckets=BUCKETS, registry=CollectorRegistry())
    for amount in (0.001, 0.05, 0.07, 0.5, 3.0, 0.0):  # 3.0 lands in +Inf
        theirs.labels("/v1/agents").observe(amount, EXEMPLAR)
        observe_with_exemplar(ours.labels("/v1/agents"), amount, EXEMPLAR)
    assert _samples(ours) == _samples(theirs)
    exemplars = [sample[3] for sample in _samples(ours) if sample[3] is not None]
    assert (EXEMPLAR, 3.0) in exemplars  # the +Inf bucket's
    assert (EXEMPLAR, 0.07) in exemplars  # the latest of a bucket's observations wins

"""Our two shortcuts around prometheus_client record what the library's own calls record.

A duration observed with an exemplar by our short path is what ``observe(amount,
exemplar)`` records: the same buckets, sum and count, and the exemplar on the bucket the
amount falls in (its labels and value), +Inf included. A child found by ``labelled`` is the
one ``labels`` returns, so what is counted through either shows in one series."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.observability.metrics import labelled, observe_with_exemplar

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


def test_a_labelled_child_is_the_one_labels_returns() -> None:
    registry = CollectorRegistry()
    runs = Counter("runs", "", ["agent", "status"], registry=registry)
    child = labelled(runs, "chat", "completed")
    assert child is runs.labels("chat", "completed") is labelled(runs, "chat", "completed")
    assert labelled(runs, "chat", "failed") is not child
    child.inc()
    runs.labels(agent="chat", status="completed").inc(2)
    labelled(runs, "chat", "failed").inc()
    assert registry.get_sample_value("runs_total", {"agent": "chat", "status": "completed"}) == 3
    assert registry.get_sample_value("runs_total", {"agent": "chat", "status": "failed"}) == 1

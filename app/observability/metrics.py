"""Prometheus metric definitions and exposition.

Metrics are module-level (the client library's model); they only write to memory, or to
PROMETHEUS_MULTIPROC_DIR under gunicorn, so defining them at import connects to nothing.
Under several workers every worker writes its own files and a scrape merges them
(docs/decisions.md: without multiprocess mode each scrape shows one worker).
"""

from __future__ import annotations

import os
import time
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.samples import Exemplar

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration (streams: until the stream ends).",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "HTTP requests being served.",
    multiprocess_mode="livesum",
)
RATE_LIMIT_REJECTIONS = Counter("rate_limit_rejections_total", "Requests answered 429.", ["route"])
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "rate_limit_backend_errors_total",
    "Rate-limit checks that failed on the storage backend, by policy outcome.",
    ["outcome"],
)
AUTH_FAILURES = Counter("auth_failures_total", "Rejected credentials by reason.", ["reason"])


M = TypeVar("M", Counter, Gauge, Histogram)
_CHILDREN: dict[tuple[object, tuple[str, ...]], Any] = {}


def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)`` (values in the metric's label order), found by one dict
    lookup after the first call. The library's ``labels`` converts each value, checks the
    count and takes a lock on every call, about 1.5 us; an invoke asks it 16 times. A
    child lives as long as its series: nothing here calls ``remove`` or ``clear``, so the
    child kept is the one ``labels`` would return, and the dict holds no more entries than
    the metrics hold series."""
    key = (metric, values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def observe_with_exemplar(histogram: Histogram, amount: float, exemplar: dict[str, str]) -> None:
    """``histogram.observe(amount, exemplar)`` for a labelled child, without the library's
    validation of the exemplar's labels on every call: ours are always ``trace_id`` and
    ``span_id`` with 48 hex digits, well inside the 128 characters allowed. It was a third
    of what an exemplar cost a request. The rest is observe's own code (prometheus-client
    0.2x); tests/integration/test_tracing.py reads the exemplar back from /metrics."""
    child: Any = histogram
    child._sum.inc(amount)  # noqa: SLF001 - observe's own steps, minus the validation
    for index, bound in enumerate(child._upper_bounds):  # noqa: SLF001
        if amount <= bound:
            bucket = child._buckets[index]  # noqa: SLF001
            bucket.inc(1)
            bucket.set_exemplar(Exemplar(exemplar, amount, time.time()))
            return


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render_latest(accept: str = "") -> tuple[bytes, str]:
    """Blocking file reads in multiprocess mode: call it from a worker thread. The
    OpenMetrics format when the scraper asks for it (``Accept``; Prometheus does): only it
    shows exemplars (the trace ids of app/middleware/metrics.py); else the text format."""
    registry = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if "application/openmetrics-text" in accept:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type
    return generate_latest(registry), CONTENT_TYPE_LATEST


# Per-principal caps (app/store/concurrency.py, the task backends).
CONCURRENCY_REJECTIONS = Counter(
    "concurrency_rejections_total", "Runs and tasks refused by a per-principal cap.", ["kind"]
)
CONCURRENCY_BACKEND_ERRORS = Counter(
    "concurrency_backend_errors_total",
    "Slot acquisitions that failed on Redis, by policy outcome.",
    ["outcome"],
)

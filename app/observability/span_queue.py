"""Where our ended spans go: straight onto the SDK batch processor's queue.

``LeanSpan.end`` hands a span to each sink of its tracer; for the SDK's BatchSpanProcessor
the sink puts it on the processor's own queue (app/observability/lean_spans.py says why
our spans are not the SDK's). Imported only when tracing is on.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._shared_internal import BatchProcessor
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

if TYPE_CHECKING:
    from app.observability.lean_spans import LeanSpan


class _BatchQueue:
    """``BatchSpanProcessor.on_end`` for our sampled spans, in one call instead of four and
    a system call: the processor's sampled check is the tracer's (a span that is not goes
    to on_end), and the batch processor's pid check on every span only repeats what its
    fork hook (os.register_at_fork) does. The span goes on the same queue, and wakes the
    same worker, as with the SDK's ``emit``; a full queue or a processor shut down is left
    to ``emit`` itself (its warning, its dropped-span metric). The queue is the same object
    for the processor's life (a fork clears it); the worker's event is not, so it is read
    each time."""

    __slots__ = ("_batch", "_batch_size", "_queue", "_queue_size")

    def __init__(self, batch: BatchProcessor[Any]) -> None:
        self._batch = batch
        self._queue: deque[Any] = batch._queue  # noqa: SLF001 - see span_sink
        self._batch_size = batch._max_export_batch_size  # noqa: SLF001
        self._queue_size = batch._max_queue_size  # noqa: SLF001

    def put(self, span: LeanSpan) -> None:
        queue = self._queue
        if len(queue) < self._queue_size and not self._batch._shutdown:  # noqa: SLF001
            queue.appendleft(span)
            if len(queue) >= self._batch_size:
                awaken = self._batch._worker_awaken  # noqa: SLF001
                if not awaken.is_set():
                    awaken.set()
        else:
            self._batch.emit(span)


def span_sink(processor: SpanProcessor) -> Callable[[LeanSpan], None]:
    """Where an ended span goes for ``processor``: straight onto its queue for the SDK's
    BatchSpanProcessor (opentelemetry-sdk 1.45's private layout, checked here; with any
    other layout, or another processor, its own ``on_end``). tests/unit/test_lean_spans.py
    holds both ways to the same export."""
    batch = getattr(processor, "_batch_processor", None)
    if (
        type(processor) is BatchSpanProcessor
        and type(batch) is BatchProcessor
        and hasattr(os, "register_at_fork")
        and isinstance(getattr(batch, "_queue", None), deque)
        and all(
            hasattr(batch, name)
            for name in ("_shutdown", "_worker_awaken", "_max_export_batch_size", "_max_queue_size")
        )
    ):
        return _BatchQueue(batch).put
    return processor.on_end  # type: ignore[return-value]  # read as a ReadableSpan

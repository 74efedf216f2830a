"""The OTLP/HTTP span exporter with our encoder (app/observability/otlp_encoding.py says why).

Everything but the encoding stays the library's: the ``OTEL_EXPORTER_OTLP_*`` settings
(endpoint, headers, timeout, compression, certificates), the transport and its retries, the
request size limit and the exporter's own metrics. ``export`` is the library's method
(opentelemetry-exporter-otlp-proto-http 1.45) with one line changed, so it reads the
attributes that method reads; tests/e2e/test_tracing.py exports through it to a real
receiver, and an upgrade that renames them fails there. Imported only when tracing is on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from app.observability.otlp_encoding import encode_spans

_logger = logging.getLogger(__name__)
_STATUS_CODE = "http.response.status_code"


class FastOTLPSpanExporter(OTLPSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return super().export(spans)  # the library's warning and failure
        with self._metrics.export_operation(len(spans)) as result:
            try:
                data = encode_spans(spans)  # the one change
            except Exception as error:
                _logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if 0 < self._max_request_size < len(data):
                _logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(data),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(data)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {_STATUS_CODE: sent.status_code} if sent.status_code is not None else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

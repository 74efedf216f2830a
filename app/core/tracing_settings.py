"""Settings of OpenTelemetry tracing: on or off, and whose ``traceparent`` to believe.

Everything else (service name, resource attributes, exporter endpoint and headers, sampler,
batch delays, message-content capture, semantic-convention opt-in) is the standard ``OTEL_*``
environment the OpenTelemetry SDK reads itself (app/observability/tracing_setup.py). A group
of its own, mixed into Settings (app/core/config.py) like the run group.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

TrustIncoming = Literal["proxies", "all", "none"]


class TracingSettings(BaseModel):
    # --- Tracing (app/observability/tracing.py) ---------------------------------------------
    TRACING_ENABLED: bool = Field(
        False,
        description="Export OpenTelemetry traces (server requests, runs, steps, tool and model "
        "calls, the task queue) over OTLP, configured by the standard OTEL_* environment "
        'variables. Needs the extra: pip install "agent-service[tracing]". Off: no tracing '
        "code runs at all.",
    )
    TRACING_TRUST_INCOMING: TrustIncoming = Field(
        "proxies",
        description="Whose incoming traceparent continues a trace: proxies = only requests "
        "whose direct peer is in FORWARDED_ALLOW_IPS (the ingress), all = every client, none "
        "= always start a new trace (an untrusted parent is kept as a span link).",
    )

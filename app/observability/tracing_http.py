"""The server span of one HTTP request, and whose ``traceparent`` it continues.

Named ``{METHOD} {route template}`` (just ``{METHOD}`` for a path no route matches: a URL
scanner must not mint span names), with the stable HTTP server attributes. An incoming
``traceparent`` is the parent only when TRACING_TRUST_INCOMING allows it: ``all``; ``proxies``
when the direct peer (before uvicorn applies X-Forwarded-For) is in FORWARDED_ALLOW_IPS, i.e.
the request came through our ingress; ``none`` never. An untrusted one is kept as a span link,
so a trace a client started can still be found, but a client cannot join, or force the
sampling of, our traces. Imported only when tracing is on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer

from app.core.tracing_settings import TrustIncoming
from app.observability.fast_context import attach, detach, with_span
from app.observability.tracing import SAMPLED_OUT

_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})
_NO_CONTEXT = otel_context.Context()  # an empty one, shared: contexts are never changed
_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """FORWARDED_ALLOW_IPS as uvicorn reads it: IPs, CIDR networks, ``*``, other literals."""

    def __init__(self, allowed: str) -> None:
        entries = [entry.strip() for entry in allowed.split(",") if entry.strip()]
        self.everyone = "*" in entries
        self._networks: list[_IpNetwork] = []
        self._literals: set[str] = set()
        for entry in entries:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._literals.add(entry)  # a unix socket path, a host name

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        if not isinstance(host, str):
            return False
        if host in self._literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


@dataclass(slots=True)
class ServerRequest:
    span: Span
    token: Token[otel_context.Context]  # the attached context, detached at the end
    sampled_out: Token[bool] | None = None

    def end(self, status: int | None) -> None:
        span = self.span
        if self.sampled_out is not None:
            SAMPLED_OUT.reset(self.sampled_out)
            detach(self.token)
            return
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if status is None or status >= 500:  # no answer at all counts as a server error
            span.set_attribute("error.type", str(status or 500))
            span.set_status(StatusCode.ERROR)
        span.end()
        detach(self.token)

    def failed(self, exc: BaseException) -> None:
        self.span.set_attribute("error.type", type(exc).__qualname__)


class ServerSpans:
    def __init__(self, tracer: Tracer, *, trust: TrustIncoming, trusted: TrustedPeers) -> None:
        self._tracer = tracer
        self._trust = trust
        self._trusted = trusted

    def believes(self, scope: Mapping[str, Any], peer_key: str) -> bool:
        if self._trust == "all":
            return True
        if self._trust == "none":
            return False
        peer = scope.get(peer_key) or scope.get("client")
        return peer is not None and peer[0] in self._trusted

    def start(self, scope: Mapping[str, Any], route: str | None, *, peer_key: str) -> ServerRequest:
        """``route``: the matched template, None when no route matches."""
        # By name, made in C (a repeated header keeps its last value, as a carrier would).
        headers: dict[bytes, bytes] = dict(scope["headers"])
        # A request is a root unless we believe its traceparent: never the ambient context.
        parent = _NO_CONTEXT
        links = None
        if not _PROPAGATED.isdisjoint(headers):
            carrier = {
                name.decode("latin-1"): headers[name].decode("latin-1")
                for name in _PROPAGATED
                if name in headers
            }
            incoming = propagate.extract(carrier, context=_NO_CONTEXT)
            if self.believes(scope, peer_key):
                parent = incoming
            else:
                remote = trace.get_current_span(incoming).get_span_context()
                links = [Link(remote)] if remote.is_valid else None
        method = scope["method"]
        span = self._tracer.start_span(
            method if route is None else f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            links=links,
        )
        token = attach(with_span(span, parent))
        if not span.is_recording():
            return ServerRequest(span, token, SAMPLED_OUT.set(True))
        # Only for a kept span:
        span.set_attributes(_attributes(scope, route, headers.get(b"user-agent")))
        return ServerRequest(span, token)


def _attributes(
    scope: Mapping[str, Any], route: str | None, user_agent: bytes | None
) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if route is not None:
        attributes["http.route"] = route
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    if user_agent:
        attributes["user_agent.original"] = user_agent.decode("latin-1")
    request_id = scope.get("request_id")
    if request_id:
        attributes["agent_service.request_id"] = request_id
    return attributes

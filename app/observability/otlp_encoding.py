"""Spans to OTLP protobuf bytes (an ``ExportTraceServiceRequest``), written straight to the
wire format. Imported only when tracing is on.

Why by hand (docs/decisions.md "Tracing"): the OTLP exporter's encoder builds a protobuf
message object per span, attribute and value, and hashes the resource (a JSON dump) per span;
measured, that cost more CPU than the SDK's own start and end of the span. This writes the
same message field by field; tests/unit/test_otlp_encoding.py parses both encodings with
``opentelemetry-proto`` and requires them equal. The format is OTLP 1.x's
(opentelemetry/proto/trace/v1/trace.proto), a stable protocol.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind

from app.observability.lean_spans import UNSET_STATUS as _UNSET_STATUS

_logger = logging.getLogger(__name__)
_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_KIND = {kind: kind.value + 1 for kind in SpanKind}  # OTLP's enum starts at UNSPECIFIED
# SpanFlags: the context's is-remote bit is known (and, second, set).
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PAIR_CACHE = 4096  # encoded scalar attributes kept (least recently used go)


def _varint(value: int) -> bytes:
    if value < 0:
        value &= 0xFFFFFFFFFFFFFFFF  # int64 on the wire: two's complement, ten bytes
    if value < 0x80:
        return _BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_BYTE = [bytes((n,)) for n in range(0x80)]  # every one-byte varint, made once


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, message); ``tag`` is its encoded key."""
    size = len(payload)
    return tag + (_BYTE[size] if size < 0x80 else _varint(size)) + payload


def encode_value(value: Any) -> bytes:
    """An ``AnyValue`` message; the checks go in the order of the library's encoder."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{value} does not fit OTLP's int64")
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", encode_value(item)) for item in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"an attribute value of type {type(value).__name__} has no OTLP form")


@functools.lru_cache(maxsize=256)
def _key_field(key: str) -> bytes:
    return _field(b"\x0a", key.encode())


def _pair(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message's body, made each time."""
    return _key_field(key) + _field(b"\x12", encode_value(value))


@functools.lru_cache(maxsize=_PAIR_CACHE, typed=True)  # typed: True, 1 and 1.0 differ
def _cached_key_value(key: str, value: str | bool | int | float | tuple[str, ...]) -> bytes:
    return _pair(key, value)


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message. Most pairs repeat (an operation name, a model, a route), so
    scalar ones come from a bounded cache; a unique one (an id) just passes through it."""
    if isinstance(value, str | bool | int | float):
        return _cached_key_value(key, value)
    return _pair(key, value)


@functools.lru_cache(maxsize=_PAIR_CACHE, typed=True)
def _cached_attribute(
    tag: bytes, key: str, value: str | bool | int | float | tuple[str, ...]
) -> bytes:
    return _field(tag, _cached_key_value(key, value))


# Keys whose values are one request's own (ids): cached, they would only push out the pairs
# that repeat.
_UNIQUE_KEYS = frozenset(
    {
        "agent_service.request_id",
        "agent_service.run.id",
        "gen_ai.conversation.id",
        "gen_ai.response.id",
        "gen_ai.tool.call.id",
        "messaging.message.id",
    }
)
_SCALARS = frozenset({str, bool, int, float})


def encode_attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each pair as a ``KeyValue`` field; one that has no OTLP form is left out and logged,
    as the library's encoder does, so one bad attribute never loses the span. A repeating
    scalar pair (or tuple of strings, as finish reasons) comes whole, field and all, from
    one cache lookup; a unique one (an id) has only its key's bytes cached."""
    if not attributes:
        return b""
    fields: list[bytes] = []
    append = fields.append
    for key, value in attributes.items():
        try:
            kind = type(value)
            if kind in _SCALARS:
                if key in _UNIQUE_KEYS:
                    append(_field(tag, _pair(key, value)))
                else:
                    append(_cached_attribute(tag, key, value))
            elif kind is tuple and all(type(item) is str for item in value):
                append(_cached_attribute(tag, key, value))
            else:
                append(_field(tag, _key_value(key, value)))
        except (TypeError, ValueError) as error:
            _logger.warning("Failed to encode key %s: %s", key, error)
    return b"".join(fields)


def _dropped(number: int, count: int) -> bytes:
    return _varint(number << 3) + _varint(count) if count else b""


def _flags(is_remote: bool) -> bytes:
    return _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE if is_remote else 0))


_KIND_FIELD = {kind: b"\x30" + _varint(number) for kind, number in _KIND.items()}
_NO_STATUS = b"\x7a\x00"  # an UNSET status without a description: an empty message
_FLAGS_FIELD = {remote: b"\x85\x01" + _flags(remote) for remote in (False, True)}


@functools.lru_cache(maxsize=1024)
def _name_field(name: str) -> bytes:
    return _field(b"\x2a", name.encode())  # span names repeat (route templates, operations)


_TIMES = struct.Struct("<cQcQ").pack  # start and end time: two fixed64 fields in one call


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message (field numbers: trace.proto's ``Span``). A SpanContext is a
    tuple (trace id, span id, is remote, flags, state, valid): read by index, not through
    its properties, as is the common case of each optional field (none, unset)."""
    context = span.context
    assert context is not None  # noqa: S101 - an ended SDK span always has one
    head = b"\x0a\x10" + context[0].to_bytes(16, "big")
    head += b"\x12\x08" + context[1].to_bytes(8, "big")
    if context[4]:  # the trace state
        state = ",".join(f"{k}={v}" for k, v in context[4].items())
        head += _field(b"\x1a", state.encode())
    parent = span.parent
    if parent is not None:
        head += b"\x22\x08" + parent[1].to_bytes(8, "big")
    parts = [head]
    append = parts.append
    if span.name:
        append(_name_field(span.name))
    append(_KIND_FIELD[span.kind])
    start, end = span.start_time, span.end_time
    if start and end:
        append(_TIMES(b"\x39", start, b"\x41", end))
    else:
        if start:
            append(b"\x39" + _FIXED64(start))
        if end:
            append(b"\x41" + _FIXED64(end))
    append(encode_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        append(_dropped(10, span.dropped_attributes))
    if span.events:
        for event in span.events:
            body = b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b""
            body += _field(b"\x12", event.name.encode()) if event.name else b""
            body += encode_attributes(b"\x1a", event.attributes)
            append(_field(b"\x5a", body + _dropped(4, event.dropped_attributes)))
    if span.dropped_events:
        append(_dropped(12, span.dropped_events))
    if span.links:
        for link in span.links:
            body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
            body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
            body += encode_attributes(b"\x22", link.attributes)
            body += _dropped(5, link.dropped_attributes)
            append(_field(b"\x6a", body + b"\x35" + _flags(link.context.is_remote)))
    if span.dropped_links:
        append(_dropped(14, span.dropped_links))
    status = span.status
    if status is _UNSET_STATUS:  # the common case, without the properties' calls
        append(_NO_STATUS)
    else:
        code = status.status_code.value
        if code or status.description:
            body = _field(b"\x12", status.description.encode()) if status.description else b""
            append(_field(b"\x7a", body + (b"\x18" + _varint(code) if code else b"")))
        else:
            append(_NO_STATUS)
    append(_FLAGS_FIELD[parent is not None and parent[2]])  # parent[2]: is remote
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b"\x0a\x00"
    body = _field(b"\x0a", scope.name.encode()) if scope.name else b""
    body += _field(b"\x12", scope.version.encode()) if scope.version else b""
    return _field(b"\x0a", body + encode_attributes(b"\x1a", scope.attributes))


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``: the spans grouped by resource, then by scope, in
    the order first seen. Resources are grouped by identity (a provider hands every span
    the same object; the library hashes the resource's JSON per span), scopes by value,
    each scope object hashed once a batch (its hash is a Python method)."""
    resources: dict[int, tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = {}
    by_scope_object: dict[tuple[int, int], list[bytes]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        encoded = by_scope_object.get((id(resource), id(scope)))
        if encoded is None:
            _, scopes = resources.setdefault(id(resource), (resource, {}))
            encoded = scopes.setdefault(scope or None, [])
            by_scope_object[id(resource), id(scope)] = encoded
        encoded.append(_field(b"\x12", encode_span(span)))
    out = []
    for resource, scopes in resources.values():
        scope_spans = [
            _field(b"\x12", _scope(scope) + b"".join(encoded) + _schema(scope))
            for scope, encoded in scopes.items()
        ]
        head = _field(b"\x0a", encode_attributes(b"\x0a", resource.attributes))
        out.append(_field(b"\x0a", head + b"".join(scope_spans) + _schema(resource)))
    return b"".join(out)


def _schema(owner: Resource | InstrumentationScope | None) -> bytes:
    url = owner.schema_url if owner is not None else ""
    return _field(b"\x1a", url.encode()) if url else b""

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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanKind

from app.observability.lean_spans import UNSET_STATUS as _UNSET_STATUS

_logger = logging.getLogger(__name__)
_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
# SpanFlags: the context's is-remote bit is known (and, second, set).
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PAIR_CACHE = 4096  # encoded attributes kept, a field tag (emptied when full)


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
# Sizes below 4,096 (a span without captured content), their varints made once.
_LENGTHS = [_varint(size) for size in range(4096)]


def _length(size: int) -> bytes:
    return _LENGTHS[size] if size < 4096 else _varint(size)


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
        pairs = b"".join(_field(b"\x0a", _pair(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"an attribute value of type {type(value).__name__} has no OTLP form")


@functools.lru_cache(maxsize=256)
def _key_field(key: str) -> bytes:
    return _field(b"\x0a", key.encode())


def _pair(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message's body, made each time."""
    return _key_field(key) + _field(b"\x12", encode_value(value))


# Keys whose values are one request's own (ids): cached, they would only push out the pairs
# that repeat. And values that are long and never repeat (captured content).
_UNCACHED_KEYS = frozenset(
    {
        "agent_service.request_id",
        "agent_service.run.id",
        "gen_ai.conversation.id",
        "gen_ai.response.id",
        "gen_ai.tool.call.id",
        "messaging.message.id",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
    }
)
_SCALARS = frozenset({str, bool, int, float})
# Encoded ``KeyValue`` fields by field tag, then by (key, value, the value's type): True, 1
# and 1.0 are equal keys in Python, not on the wire. Only scalars and tuples of strings are
# put in (a tuple's items are not typed: (1,) == (True,)). Emptied when full: the pairs that
# repeat are back after one span each.
_ATTRIBUTE_FIELDS: dict[bytes, dict[tuple[str, Any, type], bytes]] = {}


def encode_attributes(
    tag: bytes, attributes: Mapping[str, Any] | None, *, cached: bool = True
) -> bytes:
    """Each pair as a ``KeyValue`` field. Most pairs repeat from span to span (an operation
    name, a model, a route, a status): they come from a cache, all of a span's pairs looked
    up in one pass made in C; the others (an id, ``cached`` false for events' content and
    exceptions, a value the cache cannot hold) are encoded one by one. A pair that has no
    OTLP form is left out and logged, as the library's encoder does, so one bad attribute
    never loses the span."""
    if not attributes:
        return b""
    if not cached:
        return b"".join(_fields_one_by_one(tag, attributes.items(), None))
    cache = _ATTRIBUTE_FIELDS.get(tag)
    if cache is None:
        cache = _ATTRIBUTE_FIELDS[tag] = {}
    values = attributes.values()
    try:
        fields = list(map(cache.get, zip(attributes, values, map(type, values), strict=True)))
    except TypeError:  # a value that cannot be a key (a list)
        return b"".join(_fields_one_by_one(tag, attributes.items(), None))
    misses = fields.count(None)
    if misses:  # found by index in C: the hits cost no Python step
        keys, items = list(attributes), list(values)
        index = -1
        for _ in range(misses):
            index = fields.index(None, index + 1)
            fields[index] = _attribute_field(tag, keys[index], items[index], cache)
    return b"".join(fields)  # type: ignore[arg-type]  # no None is left


def _fields_one_by_one(
    tag: bytes,
    pairs: Iterable[tuple[str, Any]],
    cache: dict[tuple[str, Any, type], bytes] | None,
) -> list[bytes]:
    return [_attribute_field(tag, key, value, cache) for key, value in pairs]


def _attribute_field(
    tag: bytes, key: str, value: Any, cache: dict[tuple[str, Any, type], bytes] | None
) -> bytes:
    """One pair's field (empty for one without an OTLP form), kept in ``cache`` when it
    may repeat."""
    try:
        if type(value) is str:  # most: an id, a name; the same bytes as _pair's, in one go
            data = value.encode()
            any_value = b"\x0a" + _length(len(data)) + data
            pair = _key_field(key) + b"\x12" + _length(len(any_value)) + any_value
        else:
            pair = _pair(key, value)
        field = tag + _length(len(pair)) + pair
    except (TypeError, ValueError) as error:
        _logger.warning("Failed to encode key %s: %s", key, error)
        return b""
    kind = type(value)
    if (
        cache is not None
        and key not in _UNCACHED_KEYS
        and (kind in _SCALARS or (kind is tuple and all(type(v) is str for v in value)))
    ):
        if len(cache) >= _PAIR_CACHE:
            cache.clear()
        cache[key, value, kind] = field
    return field


def _dropped(number: int, count: int) -> bytes:
    return _varint(number << 3) + _varint(count) if count else b""


def _flags(is_remote: bool) -> bytes:
    return _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE if is_remote else 0))


_NO_STATUS = b"\x7a\x00"  # an UNSET status without a description: an empty message
_FLAGS_FIELD = {remote: b"\x85\x01" + _flags(remote) for remote in (False, True)}


@functools.lru_cache(maxsize=1024)
def _name_field(name: str) -> bytes:
    # Span names repeat (route templates, operations); an empty one is no field at all.
    return _field(b"\x2a", name.encode()) if name else b""


_LOW64 = (1 << 64) - 1
# The fixed-size fields, each struct in one call: trace id (two big-endian halves) and
# span id, with the parent's span id or without; the kind with start and end time.
_IDS = struct.Struct(">2sQQ2sQ").pack
_IDS_PARENT = struct.Struct(">2sQQ2sQ2sQ").pack
_IDS_SIZE = struct.calcsize(">2sQQ2sQ")
_KIND_TIMES = struct.Struct("<2scQcQ").pack
# By the kind's value (an Enum's own hash is a Python method): OTLP's enum starts at UNSPECIFIED.
_KIND_VALUE_FIELD = {kind.value: b"\x30" + _varint(kind.value + 1) for kind in SpanKind}
# Status unset and flags (parent local, parent remote): the tail of most spans.
_PLAIN_TAILS = (_NO_STATUS + _FLAGS_FIELD[False], _NO_STATUS + _FLAGS_FIELD[True])


def _span_field(span: ReadableSpan) -> bytes:
    """One ``Span`` message as a field of its ScopeSpans (field numbers: trace.proto's
    ``Span``). A SpanContext is a tuple (trace id, span id, is remote, flags, state,
    valid), read by index, not through its properties; the common case of each optional
    part (no trace state, no events or links, status unset) costs one check."""
    context = span.context
    assert context is not None  # noqa: S101 - an ended SDK span always has one
    trace_id, parent = context[0], span.parent
    if parent is None:
        head = _IDS(b"\x0a\x10", trace_id >> 64, trace_id & _LOW64, b"\x12\x08", context[1])
    else:
        head = _IDS_PARENT(
            b"\x0a\x10",
            trace_id >> 64,
            trace_id & _LOW64,
            b"\x12\x08",
            context[1],
            b"\x22\x08",
            parent[1],
        )
    state = context[4]
    if state is not DEFAULT_TRACE_STATE and state:  # in field order: after the span id
        text = ",".join(f"{k}={v}" for k, v in state.items())
        head = head[:_IDS_SIZE] + _field(b"\x1a", text.encode()) + head[_IDS_SIZE:]
    start, end = span.start_time, span.end_time
    if start and end:
        kind_times = _KIND_TIMES(_KIND_VALUE_FIELD[span.kind._value_], b"\x39", start, b"\x41", end)
    else:
        kind_times = _KIND_VALUE_FIELD[span.kind._value_]
        kind_times += b"\x39" + _FIXED64(start) if start else b""
        kind_times += b"\x41" + _FIXED64(end) if end else b""
    remote = parent is not None and parent[2]
    if (
        span.events
        or span.links
        or span.status is not _UNSET_STATUS
        or span.dropped_attributes
        or span.dropped_events
        or span.dropped_links
    ):
        tail = _tail(span, remote=remote)
    else:
        tail = _PLAIN_TAILS[remote]
    body = b"".join(
        (
            head,
            _name_field(span.name),
            kind_times,
            encode_attributes(b"\x4a", span.attributes),
            tail,
        )
    )
    size = len(body)
    return b"\x12" + _length(size) + body


def _tail(span: ReadableSpan, *, remote: bool) -> bytes:
    """What follows a span's attributes: dropped counts, events, links, status, flags."""
    parts: list[bytes] = []
    append = parts.append
    if span.dropped_attributes:
        append(_dropped(10, span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b""
        body += _field(b"\x12", event.name.encode()) if event.name else b""
        body += encode_attributes(b"\x1a", event.attributes, cached=False)
        append(_field(b"\x5a", body + _dropped(4, event.dropped_attributes)))
    if span.dropped_events:
        append(_dropped(12, span.dropped_events))
    for link in span.links:
        body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
        body += encode_attributes(b"\x22", link.attributes)
        body += _dropped(5, link.dropped_attributes)
        append(_field(b"\x6a", body + b"\x35" + _flags(link.context.is_remote)))
    if span.dropped_links:
        append(_dropped(14, span.dropped_links))
    status = span.status
    code = status.status_code.value
    if code or status.description:
        body = _field(b"\x12", status.description.encode()) if status.description else b""
        append(_field(b"\x7a", body + (b"\x18" + _varint(code) if code else b"")))
    else:
        append(_NO_STATUS)
    append(_FLAGS_FIELD[remote])
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
    last_resource = last_scope = encoded = None
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        if resource is not last_resource or scope is not last_scope or encoded is None:
            encoded = by_scope_object.get((id(resource), id(scope)))
            if encoded is None:
                _, scopes = resources.setdefault(id(resource), (resource, {}))
                encoded = scopes.setdefault(scope or None, [])
                by_scope_object[id(resource), id(scope)] = encoded
            last_resource, last_scope = resource, scope  # runs of spans share both
        encoded.append(_span_field(span))
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

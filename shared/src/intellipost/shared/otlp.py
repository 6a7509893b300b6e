"""OTLP/protobuf encoding of finished spans, written straight to bytes.

The SDK's OTLP exporter builds a protobuf message object per span, attribute and value
before serializing them (and hashes the resource as JSON for every span to group them):
about 27 µs a span here, paid on every traced request's CPU. This writes the same
``ExportTraceServiceRequest`` wire format directly, a few times faster; the SDK exporter's
transport (retries, timeouts, compression, headers) stays as it is. A batch holding
anything this encoder does not know is handed to the SDK's encoder instead, so the
result never differs from what the SDK would send.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
# SDK SpanKind values (INTERNAL=0 ... CONSUMER=4) -> OTLP SpanKind (INTERNAL=1 ... CONSUMER=5).
_KINDS = (b"\x30\x01", b"\x30\x02", b"\x30\x03", b"\x30\x04", b"\x30\x05")
_HAS_IS_REMOTE = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_CACHE_LIMIT = 4096
# Ids (UUIDs are 36 characters) would fill the value cache with strings seen once.
_SHORT = 32
# Encoded attribute keys, and whole ``value`` fields of short strings: both repeat a lot
# (method names, routes, schemes) and encoding them is most of an attribute's cost.
_keys: dict[str, bytes] = {}
_short_values: dict[str, bytes] = {}


class EncodedSpans:
    """The encoded request, shaped like the protobuf message the SDK exporter serializes."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializePartialToString(self) -> bytes:  # noqa: N802  (the protobuf method name)
        return self.data

    SerializeToString = SerializePartialToString


def encode_spans(spans: Sequence[ReadableSpan]) -> Any:
    """An ``ExportTraceServiceRequest`` for ``spans``, byte for byte what the SDK sends."""
    try:
        return EncodedSpans(_request(spans))
    except _UnsupportedError:
        return sdk_encode_spans(spans)


class _UnsupportedError(Exception):
    """Something only the SDK's encoder handles (it logs and skips a bad attribute)."""


_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (tag already encoded)."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """The ``AnyValue`` message body for an attribute value, as the SDK maps types."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        if not -(2**63) <= value < 2**63:
            raise _UnsupportedError
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    if value is None:
        return b""
    if isinstance(value, (str, bool, int, float)):  # subclasses: let the SDK decide
        raise _UnsupportedError
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        pairs = [_key_value(str(k), v) for k, v in value.items()]
        return _field(b"\x32", b"".join([_field(b"\x0a", pair) for pair in pairs]))
    raise _UnsupportedError


def _key_value(key: str, value: Any) -> bytes:
    encoded_key = _keys.get(key)
    if encoded_key is None:
        encoded_key = _field(b"\x0a", key.encode())
        if len(_keys) < _CACHE_LIMIT:
            _keys[key] = encoded_key
    if type(value) is str and len(value) <= _SHORT:
        encoded_value = _short_values.get(value)
        if encoded_value is None:
            encoded_value = _field(b"\x12", _any_value(value))
            if len(_short_values) < _CACHE_LIMIT:
                _short_values[value] = encoded_value
        return encoded_key + encoded_value
    return encoded_key + _field(b"\x12", _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join([_field(tag, _key_value(k, v)) for k, v in attributes.items()])


def _flags(parent: SpanContext | None) -> bytes:
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    return _FIXED32(flags)


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    if context is None or span.start_time is None or span.end_time is None:
        raise _UnsupportedError
    out = [
        b"\x0a\x10",
        context.trace_id.to_bytes(16, "big"),
        b"\x12\x08",
        context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        out.append(
            _field(b"\x1a", ",".join(f"{k}={v}" for k, v in context.trace_state.items()).encode())
        )
    parent = span.parent
    if parent:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    out.append(_field(b"\x2a", span.name.encode()))
    out.append(_KINDS[span.kind.value])
    out.append(b"\x39" + _FIXED64(span.start_time))
    out.append(b"\x41" + _FIXED64(span.end_time))
    out.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        out.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _FIXED64(event.timestamp) + _field(b"\x12", event.name.encode())
        body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        out.append(_field(b"\x5a", body))
    if span.dropped_events:
        out.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
        body += _attributes(b"\x22", link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        body += b"\x35" + _flags(link.context)
        out.append(_field(b"\x6a", body))
    if span.dropped_links:
        out.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    body = _field(b"\x12", status.description.encode()) if status.description else b""
    if status.status_code.value:
        body += b"\x18" + _varint(status.status_code.value)
    out.append(_field(b"\x7a", body))
    out.append(b"\x85\x01" + _flags(parent))
    return b"".join(out)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    out = _field(b"\x0a", scope.name.encode()) if scope.name else b""
    if scope.version:
        out += _field(b"\x12", scope.version.encode())
    return out + _attributes(b"\x1a", scope.attributes)


def _request(spans: Sequence[ReadableSpan]) -> bytes:
    # Group as the SDK does (equal resources together, then equal scopes, in order of first
    # appearance), looking objects up by identity first: hashing a Resource serializes it.
    groups: list[tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = []
    by_identity: dict[int, dict[InstrumentationScope | None, list[bytes]]] = {}
    # Lists of encoded spans by the identity of their (resource, scope) objects.
    spans_of: dict[tuple[int, int], list[bytes]] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        encoded = spans_of.get((id(resource), id(scope)))
        if encoded is None:
            scopes = by_identity.get(id(resource))
            if scopes is None:
                for known, known_scopes in groups:
                    if known == resource:
                        scopes = known_scopes
                        break
                else:
                    scopes = {}
                    groups.append((resource, scopes))
                by_identity[id(resource)] = scopes
            encoded = spans_of[(id(resource), id(scope))] = scopes.setdefault(scope, [])
        encoded.append(_span(span))
    out = []
    for resource, scopes in groups:
        body = _field(b"\x0a", _attributes(b"\x0a", resource.attributes))
        for scope, encoded in scopes.items():
            scope_spans = _field(b"\x0a", _scope(scope))
            scope_spans += b"".join([_field(b"\x12", span) for span in encoded])
            if scope is not None and scope.schema_url:
                scope_spans += _field(b"\x1a", scope.schema_url.encode())
            body += _field(b"\x12", scope_spans)
        if resource.schema_url:
            body += _field(b"\x1a", resource.schema_url.encode())
        out.append(_field(b"\x0a", body))
    return b"".join(out)


def install() -> None:
    """Make the SDK's OTLP/HTTP span exporter encode its requests with ``encode_spans``."""
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    # The exporter calls its module's ``encode_spans`` by name; if a future SDK no longer
    # does, it keeps its own encoder and only the speed-up is lost.
    if getattr(trace_exporter, "encode_spans", None) is sdk_encode_spans:
        setattr(trace_exporter, "encode_spans", encode_spans)  # noqa: B010

"""W3C Trace Context Level 2 propagation for OpenTelemetry: traceparent, tracestate, traceresponse.

Why not the stock ``TraceContextTextMapPropagator`` (opentelemetry-api 1.45): it reads only the
first ``traceparent`` when a request carries several, so a request with two ``traceparent``
header lines continues a trace instead of starting a new one, and a future-version header may
carry a comma-joined second value in its trailing data. Here every rule is enforced explicitly:

- More than one ``traceparent`` value (separate header lines or a comma-joined list) is invalid
  and the caller starts a new trace. ``tracestate`` is only read when ``traceparent`` is valid.
- ``tracestate`` is all or nothing: one invalid member, a duplicate key or more than 32 members
  drops the whole header. For the 32-member rule the spec would also allow truncation; dropping
  is chosen because a header over the limit does not match the ``list`` grammar (so it is
  invalid like any other malformed one), truncating would pick which vendors lose their entry,
  and the W3C test suite (STRICT_LEVEL 2) expects the drop.
- Flags: the received flags byte is kept on the extracted ``SpanContext``, but only the two bits
  Level 2 defines (sampled 0x01, random-trace-id 0x02) are ever written out, because the spec
  says unknown flags MUST be set to zero.

Random-trace-id flag: nothing to do in the propagator. The SDK (opentelemetry-sdk >= 1.42, with
the child-span fix of open-telemetry/opentelemetry-python#5241; 1.45 is locked) copies 0x02 from
the parent when a span continues a trace and, for a trace it starts, sets it when the
``IdGenerator`` says its ids are random (the default ``RandomIdGenerator`` does). Injecting the
span's own flags therefore keeps the bit exactly when the spec requires: set if it arrived set
or we generated the trace id, unset if it arrived unset. OR-ing it in at inject time would break
the "unset stays unset" rule, so it is deliberately not done.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)

__all__ = [
    "TRACEPARENT_HEADER",
    "TRACERESPONSE_HEADER",
    "TRACESTATE_HEADER",
    "W3CTraceContextPropagator",
    "format_traceparent",
    "format_traceresponse",
    "install_propagators",
    "parse_traceparent",
    "parse_tracestate",
]

TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
TRACERESPONSE_HEADER = "traceresponse"

# OWS in RFC 9110 is spaces and horizontal tabs only.
_OWS = " \t"

# Trailing data is only allowed for future versions, must start with "-", and may not contain a
# comma: a comma means a proxy joined several traceparent lines into one list.
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^,]*)?")

_TRACESTATE_MEMBER_RE = re.compile(
    r"([a-z][_0-9a-z\-*/]{0,255}"  # simple key
    r"|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"  # tenant@system key
    # Printable ASCII minus "," and "="; the last character may not be a space.
    r"=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)
_TRACESTATE_MAX_MEMBERS = 32

# TraceState is immutable, so one empty instance serves every dropped or absent header.
_EMPTY_TRACESTATE = TraceState()

_KNOWN_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


def _reject_bare_str(values: Sequence[str]) -> None:
    # A str is itself a Sequence[str]; passing one would be silently misparsed.
    if isinstance(values, str):
        raise TypeError("pass the list of header values, not a single str")


def _parse_traceparent_fields(values: Sequence[str]) -> tuple[int, int, int] | None:
    _reject_bare_str(values)
    if len(values) != 1:
        return None
    match = _TRACEPARENT_RE.fullmatch(values[0].strip(_OWS))
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, trailing = match.groups()
    if version == "ff" or (version == "00" and trailing is not None):
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, int(flags_hex, 16)


def parse_traceparent(values: Sequence[str]) -> SpanContext | None:
    """Parse every received ``traceparent`` value; None means start a new trace.

    ``values`` holds one entry per header line, as ASGI and aiohttp getters return them.
    The result is a remote ``SpanContext`` with the flags byte as received.
    """
    fields = _parse_traceparent_fields(values)
    if fields is None:
        return None
    trace_id, span_id, flags = fields
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def parse_tracestate(values: Sequence[str]) -> TraceState:
    """Combine and validate every received ``tracestate`` value; invalid input gives it empty."""
    _reject_bare_str(values)
    members: dict[str, str] = {}
    # Splitting each header line on its own is the same as splitting the comma-joined lines.
    for value in values:
        for raw_member in value.split(","):
            member = raw_member.strip(_OWS)
            if not member:
                continue
            match = _TRACESTATE_MEMBER_RE.fullmatch(member)
            if match is None or len(members) == _TRACESTATE_MAX_MEMBERS:
                return _EMPTY_TRACESTATE
            key, member_value = match.groups()
            if key in members:
                return _EMPTY_TRACESTATE
            members[key] = member_value
    if not members:
        return _EMPTY_TRACESTATE
    state = TraceState(list(members.items()))
    # TraceState skips pairs its own validation rejects; keep the all-or-nothing rule if that
    # validation ever becomes stricter than ours.
    return state if len(state) == len(members) else _EMPTY_TRACESTATE


def format_traceparent(span_context: SpanContext) -> str:
    """Serialize a valid span context as a version 00 ``traceparent`` value."""
    if not span_context.is_valid:
        raise ValueError("cannot format an invalid span context")
    flags = span_context.trace_flags & _KNOWN_FLAGS
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def format_traceresponse(span_context: SpanContext) -> str:
    """Serialize the server span that handled a request as a ``traceresponse`` value.

    The Level 2 response header has the traceparent layout with the callee's span id as
    ``child-id``, so pass the server span's context, not the incoming parent's.
    """
    return format_traceparent(span_context)


class W3CTraceContextPropagator(TextMapPropagator):
    """Extracts and injects ``traceparent``/``tracestate`` per W3C Trace Context Level 2."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        fields = _parse_traceparent_fields(getter.get(carrier, TRACEPARENT_HEADER) or ())
        if fields is None:
            return context
        trace_id, span_id, flags = fields
        tracestate = getter.get(carrier, TRACESTATE_HEADER)
        span_context = SpanContext(
            trace_id,
            span_id,
            is_remote=True,
            trace_flags=TraceFlags(flags),
            trace_state=parse_tracestate(tracestate) if tracestate else _EMPTY_TRACESTATE,
        )
        return set_span_in_context(NonRecordingSpan(span_context), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        setter.set(carrier, TRACEPARENT_HEADER, format_traceparent(span_context))
        if span_context.trace_state:
            setter.set(carrier, TRACESTATE_HEADER, span_context.trace_state.to_header())

    @property
    def fields(self) -> set[str]:
        return {TRACEPARENT_HEADER, TRACESTATE_HEADER}


def install_propagators() -> None:
    """Make W3C trace context (this module) plus W3C baggage the global OTel propagator."""
    set_global_textmap(CompositePropagator([W3CTraceContextPropagator(), W3CBaggagePropagator()]))

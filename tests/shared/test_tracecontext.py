"""W3C Trace Context Level 2 conformance of intellipost.shared.tracecontext."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware, asgi_getter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from intellipost.shared.tracecontext import (
    W3CTraceContextPropagator,
    format_traceparent,
    format_traceresponse,
    install_propagators,
    parse_traceparent,
    parse_tracestate,
)

# The identifiers the W3C test suite (w3c/trace-context test/test.py) uses throughout.
TRACE_HEX = "12345678901234567890123456789012"
SPAN_HEX = "1234567890123456"
TRACE_ID = int(TRACE_HEX, 16)
SPAN_ID = int(SPAN_HEX, 16)
VALID = f"00-{TRACE_HEX}-{SPAN_HEX}-01"

# --------------------------------------------------------------------------------------------
# traceparent
# --------------------------------------------------------------------------------------------

VALID_TRACEPARENTS: list[tuple[str, str, int]] = [
    ("sampled", VALID, 0x01),
    ("not sampled", f"00-{TRACE_HEX}-{SPAN_HEX}-00", 0x00),
    ("sampled and random", f"00-{TRACE_HEX}-{SPAN_HEX}-03", 0x03),
    ("random, not sampled", f"00-{TRACE_HEX}-{SPAN_HEX}-02", 0x02),
    ("unknown flag bits kept", f"00-{TRACE_HEX}-{SPAN_HEX}-ff", 0xFF),
    ("leading space", f" {VALID}", 0x01),
    ("leading tab", f"\t{VALID}", 0x01),
    ("trailing space", f"{VALID} ", 0x01),
    ("trailing tab", f"{VALID}\t", 0x01),
    ("ows both sides", f"\t {VALID} \t", 0x01),
    ("future version", f"cc-{TRACE_HEX}-{SPAN_HEX}-01", 0x01),
    (
        "future version with extra field",
        f"cc-{TRACE_HEX}-{SPAN_HEX}-01-what-the-future-will-be-like",
        0x01,
    ),
    (
        "version 01 with extra fields",
        f"01-{TRACE_HEX}-{SPAN_HEX}-01-what-the-future-will-not-be-like",
        0x01,
    ),
    ("future version, empty extra field", f"01-{TRACE_HEX}-{SPAN_HEX}-01-", 0x01),
    ("future version with ows", f" fe-{TRACE_HEX}-{SPAN_HEX}-03-x \t", 0x03),
]


@pytest.mark.parametrize(
    ("header", "flags"),
    [pytest.param(header, flags, id=name) for name, header, flags in VALID_TRACEPARENTS],
)
def test_valid_traceparent_is_continued(header: str, flags: int) -> None:
    span_context = parse_traceparent([header])

    assert span_context is not None
    assert span_context.trace_id == TRACE_ID
    assert span_context.span_id == SPAN_ID
    assert span_context.is_remote
    assert span_context.trace_flags == flags


def _with_char(position: int, char: str) -> str:
    return VALID[:position] + char + VALID[position + 1 :]


INVALID_TRACEPARENTS: list[tuple[str, str]] = [
    ("empty", ""),
    ("ows only", " \t "),
    ("garbage", "not-a-traceparent"),
    ("version ff", f"ff-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version illegal char first", f".0-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version illegal char second", f"0.-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version uppercase", f"0A-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version too long 3", f"000-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version too long 4", f"0000-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version too short", f"0-{TRACE_HEX}-{SPAN_HEX}-01"),
    ("version 00 trailing dot", f"{VALID}."),
    ("version 00 extra field", f"{VALID}-extra"),
    ("version 00 future-like extra", f"{VALID}-what-the-future-will-be-like"),
    ("version 00 empty extra field", f"{VALID}-"),
    ("future version, extra not after dash", f"cc-{TRACE_HEX}-{SPAN_HEX}-01.what-the-future"),
    ("future version, shorter than 55", f"cc-{TRACE_HEX}-{SPAN_HEX}-1"),
    ("trace id all zero", f"00-{'0' * 32}-{SPAN_HEX}-01"),
    ("trace id illegal char first", f"00-.{TRACE_HEX[1:]}-{SPAN_HEX}-01"),
    ("trace id illegal char last", f"00-{TRACE_HEX[:-1]}.-{SPAN_HEX}-01"),
    ("trace id non hex g", f"00-{TRACE_HEX[:-1]}g-{SPAN_HEX}-01"),
    ("trace id uppercase", f"00-{'ABCDEF' + TRACE_HEX[6:]}-{SPAN_HEX}-01"),
    ("trace id non-ascii digit", _with_char(3, "\u0663")),
    ("trace id too long 33", f"00-{TRACE_HEX}3-{SPAN_HEX}-01"),
    ("trace id too long 34", f"00-{TRACE_HEX}34-{SPAN_HEX}-01"),
    ("trace id too short", f"00-{TRACE_HEX[:-1]}-{SPAN_HEX}-01"),
    ("parent id all zero", f"00-{TRACE_HEX}-{'0' * 16}-01"),
    ("parent id illegal char first", f"00-{TRACE_HEX}-.{SPAN_HEX[1:]}-01"),
    ("parent id illegal char last", f"00-{TRACE_HEX}-{SPAN_HEX[:-1]}.-01"),
    ("parent id uppercase", f"00-{TRACE_HEX}-ABCDEF{SPAN_HEX[6:]}-01"),
    ("parent id too long", f"00-{TRACE_HEX}-{SPAN_HEX}7-01"),
    ("parent id too short", f"00-{TRACE_HEX}-{SPAN_HEX[:-1]}-01"),
    ("flags illegal char first", f"00-{TRACE_HEX}-{SPAN_HEX}-.0"),
    ("flags illegal char second", f"00-{TRACE_HEX}-{SPAN_HEX}-0."),
    ("flags uppercase", f"00-{TRACE_HEX}-{SPAN_HEX}-0A"),
    ("flags too long", f"00-{TRACE_HEX}-{SPAN_HEX}-001"),
    ("flags too short", f"00-{TRACE_HEX}-{SPAN_HEX}-1"),
    ("underscore delimiters", VALID.replace("-", "_")),
    ("whitespace inside", f"00 -{TRACE_HEX}-{SPAN_HEX}-01"),
    ("trailing newline is not ows", f"{VALID}\n"),
    ("comma-joined identical", f"{VALID},{VALID}"),
    ("comma-joined with ows", f"{VALID}, 00-{TRACE_HEX}-{SPAN_HEX}-00"),
    (
        "future version comma-joined",
        f"cc-{TRACE_HEX}-{SPAN_HEX}-01-x,cc-{TRACE_HEX}-{SPAN_HEX}-01",
    ),
]


@pytest.mark.parametrize(
    "header", [pytest.param(header, id=name) for name, header in INVALID_TRACEPARENTS]
)
def test_invalid_traceparent_starts_new_trace(header: str) -> None:
    assert parse_traceparent([header]) is None


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([VALID, VALID], id="two identical lines"),
        pytest.param([VALID, f"00-{TRACE_HEX[:-1]}1-{SPAN_HEX}-01"], id="two different lines"),
        pytest.param([VALID, ""], id="valid plus empty line"),
        pytest.param([VALID, VALID, VALID], id="three lines"),
        pytest.param([], id="no header"),
    ],
)
def test_traceparent_must_arrive_exactly_once(values: list[str]) -> None:
    assert parse_traceparent(values) is None


@pytest.mark.parametrize("parse", [parse_traceparent, parse_tracestate])
def test_parsers_refuse_a_bare_string(parse: Callable[[Sequence[str]], object]) -> None:
    # A str is a Sequence[str] of characters; misuse must be loud, not a silent "no header".
    with pytest.raises(TypeError):
        parse(VALID)


# --------------------------------------------------------------------------------------------
# tracestate
# --------------------------------------------------------------------------------------------

KEY_ALL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
VALUE_ALL_CHARS = "".join(
    chr(c) for c in (*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F))
)
THIRTY_TWO = [
    ",".join(f"bar{i:02d}={i:02d}" for i in range(1, 11)),
    ",".join(f"bar{i:02d}={i:02d}" for i in range(11, 21)),
    ",".join(f"bar{i:02d}={i:02d}" for i in range(21, 31)),
    "bar31=31,bar32=32",
]

VALID_TRACESTATES: list[tuple[str, list[str], list[tuple[str, str]]]] = [
    ("single member", ["foo=1"], [("foo", "1")]),
    ("two members", ["foo=1,bar=2"], [("foo", "1"), ("bar", "2")]),
    (
        "multiple headers combined in order",
        ["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
        [("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")],
    ),
    ("no header lines", [], []),
    ("empty header", [""], []),
    ("empty then member", ["", "foo=1"], [("foo", "1")]),
    ("member then empty", ["foo=1", ""], [("foo", "1")]),
    ("ows-only header", [" \t "], []),
    ("empty members", ["foo=1,,bar=2"], [("foo", "1"), ("bar", "2")]),
    ("ows-only members", [", \t ,foo=1, ,\t,"], [("foo", "1")]),
    (
        "ows around members",
        ["foo=1 \t , \t bar=2, \t baz=3"],
        [("foo", "1"), ("bar", "2"), ("baz", "3")],
    ),
    (
        "tabs around members",
        ["foo=1\t \t,\t \tbar=2,\t \tbaz=3"],
        [("foo", "1"), ("bar", "2"), ("baz", "3")],
    ),
    ("leading space", [" foo=1"], [("foo", "1")]),
    ("leading tab", ["\tfoo=1"], [("foo", "1")]),
    ("trailing space is ows", ["foo=1 "], [("foo", "1")]),
    ("trailing tab is ows", ["foo=1\t"], [("foo", "1")]),
    ("ows both sides", ["\t foo=1 \t"], [("foo", "1")]),
    ("leading space kept in value", ["foo= 1"], [("foo", " 1")]),
    ("inner spaces kept in value", ["foo=a b  c"], [("foo", "a b  c")]),
    (
        "all allowed chars",
        [f"{KEY_ALL_CHARS}={VALUE_ALL_CHARS}"],
        [(KEY_ALL_CHARS, VALUE_ALL_CHARS)],
    ),
    (
        "all allowed chars, tenant key",
        [f"{KEY_ALL_CHARS}@a-z0-9_-*/={VALUE_ALL_CHARS}"],
        [(f"{KEY_ALL_CHARS}@a-z0-9_-*/", VALUE_ALL_CHARS)],
    ),
    ("tenant key", ["tenant@vendor=v"], [("tenant@vendor", "v")]),
    ("tenant key starting with digit", ["1tenant@vendor=v"], [("1tenant@vendor", "v")]),
    ("key of 256", ["foo=1", "z" * 256 + "=1"], [("foo", "1"), ("z" * 256, "1")]),
    (
        "tenant 241 and system 14",
        ["foo=1", "t" * 241 + "@" + "v" * 14 + "=1"],
        [("foo", "1"), ("t" * 241 + "@" + "v" * 14, "1")],
    ),
    ("value of 256", ["foo=" + "v" * 256], [("foo", "v" * 256)]),
    ("32 members", THIRTY_TWO, [(f"bar{i:02d}", f"{i:02d}") for i in range(1, 33)]),
    (
        "32 members plus empty ones",
        [*THIRTY_TWO, "", " , "],
        [(f"bar{i:02d}", f"{i:02d}") for i in range(1, 33)],
    ),
]


@pytest.mark.parametrize(
    ("values", "expected"),
    [pytest.param(values, expected, id=name) for name, values, expected in VALID_TRACESTATES],
)
def test_valid_tracestate_is_kept_in_order(
    values: list[str], expected: list[tuple[str, str]]
) -> None:
    assert list(parse_tracestate(values).items()) == expected


INVALID_TRACESTATES: list[tuple[str, list[str]]] = [
    ("duplicate key, same value", ["foo=1,foo=1"]),
    ("duplicate key, other value", ["foo=1,foo=2"]),
    ("duplicate key across lines", ["foo=1", "foo=1"]),
    ("duplicate key across lines, other value", ["foo=1", "foo=2"]),
    ("duplicate key further on", ["foo=1,bar=2", "baz=3,bar=4"]),
    ("space inside key", ["foo =1"]),
    ("uppercase key", ["FOO=1"]),
    ("dot in key", ["foo.bar=1"]),
    ("simple key starting with digit", ["1foo=1"]),
    ("simple key starting with underscore", ["_foo=1"]),
    ("empty key", ["=1"]),
    ("member without equals", ["foo"]),
    ("empty tenant system", ["foo@=1,bar=2"]),
    ("empty tenant id", ["@foo=1,bar=2"]),
    ("double at", ["foo@@bar=1,bar=2"]),
    ("two ats", ["foo@bar@baz=1,bar=2"]),
    ("system starting with digit", ["foo@1bar=1"]),
    ("key of 257", ["foo=1", "z" * 257 + "=1"]),
    ("tenant of 242", ["foo=1", "t" * 242 + "@v=1"]),
    ("system of 15", ["foo=1", "t@" + "v" * 15 + "=1"]),
    ("equals in value", ["foo=bar=baz"]),
    ("empty value", ["foo=,bar=3"]),
    ("space-only value", ["foo= ,bar=3"]),
    ("value of 257", ["foo=" + "v" * 257]),
    ("tab inside value", ["foo=a\tb"]),
    ("non-ascii value", ["foo=\u00e9"]),
    ("delete char in value", ["foo=a\x7f"]),
    ("newline in value", ["foo=a\nb"]),
    ("invalid member in a later line", ["foo=1", "BAR=2"]),
    ("33 members", [*THIRTY_TWO[:-1], "bar31=31,bar32=32,bar33=33"]),
]


@pytest.mark.parametrize(
    "values", [pytest.param(values, id=name) for name, values in INVALID_TRACESTATES]
)
def test_invalid_tracestate_is_dropped_whole(values: list[str]) -> None:
    assert len(parse_tracestate(values)) == 0


def test_tracestate_reserializes_combined() -> None:
    state = parse_tracestate(["foo=1 , bar=2", "", "rojo=1"])

    assert state.to_header() == "foo=1,bar=2,rojo=1"


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def _span_context(flags: int = 0x01, state: TraceState | None = None) -> SpanContext:
    return SpanContext(
        TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(flags), trace_state=state
    )


@pytest.mark.parametrize(
    ("flags", "wire"),
    [
        pytest.param(0x00, "00", id="none"),
        pytest.param(0x01, "01", id="sampled"),
        pytest.param(0x02, "02", id="random"),
        pytest.param(0x03, "03", id="sampled and random"),
        pytest.param(0xFF, "03", id="unknown bits zeroed"),
        pytest.param(0x05, "01", id="unknown bit zeroed"),
    ],
)
def test_format_traceparent_and_traceresponse(flags: int, wire: str) -> None:
    expected = f"00-{TRACE_HEX}-{SPAN_HEX}-{wire}"

    assert format_traceparent(_span_context(flags)) == expected
    assert format_traceresponse(_span_context(flags)) == expected


def test_format_pads_small_ids() -> None:
    span_context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(0x01))

    assert format_traceparent(span_context) == f"00-{'0' * 31}1-{'0' * 15}2-01"


@pytest.mark.parametrize("formatter", [format_traceparent, format_traceresponse])
def test_format_refuses_invalid_span_context(formatter: Callable[[SpanContext], str]) -> None:
    with pytest.raises(ValueError, match="invalid span context"):
        formatter(trace.INVALID_SPAN_CONTEXT)


def test_traceresponse_names_the_server_span() -> None:
    provider = _provider()
    parent = W3CTraceContextPropagator().extract({"traceparent": VALID})

    with provider.get_tracer(__name__).start_as_current_span("server", context=parent) as span:
        response = format_traceresponse(span.get_span_context())

    version, trace_hex, child_hex, flags = response.split("-")
    assert (version, trace_hex, flags) == ("00", TRACE_HEX, "01")
    assert child_hex == f"{span.get_span_context().span_id:016x}"
    assert child_hex != SPAN_HEX


# --------------------------------------------------------------------------------------------
# propagator
# --------------------------------------------------------------------------------------------


def _provider() -> TracerProvider:
    # Explicit sampler so the OTEL_TRACES_SAMPLER environment cannot change the flags we assert.
    return TracerProvider(sampler=ParentBased(ALWAYS_ON))


def _extracted(context: Context) -> SpanContext:
    return trace.get_current_span(context).get_span_context()


def test_fields() -> None:
    assert W3CTraceContextPropagator().fields == {"traceparent", "tracestate"}


def test_extract_valid_headers() -> None:
    carrier = {"traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-03", "tracestate": "rojo=1,congo=2"}

    span_context = _extracted(W3CTraceContextPropagator().extract(carrier))

    assert span_context.trace_id == TRACE_ID
    assert span_context.span_id == SPAN_ID
    assert span_context.is_remote
    assert span_context.trace_flags == 0x03
    assert span_context.trace_state.to_header() == "rojo=1,congo=2"


@pytest.mark.parametrize(
    "carrier",
    [
        pytest.param({}, id="no traceparent"),
        pytest.param({"tracestate": "foo=1"}, id="tracestate only"),
        pytest.param(
            {"traceparent": f"ff-{TRACE_HEX}-{SPAN_HEX}-01", "tracestate": "foo=1"},
            id="invalid traceparent with tracestate",
        ),
        pytest.param(
            {"traceparent": [VALID, VALID], "tracestate": "foo=1"},
            id="two traceparent values in a dict carrier",
        ),
    ],
)
def test_extract_without_valid_traceparent_returns_context_untouched(
    carrier: dict[str, Any],
) -> None:
    incoming = Context({"marker": "kept"})

    result = W3CTraceContextPropagator().extract(carrier, context=incoming)

    # tracestate must not leak into the context when traceparent is rejected.
    assert result is incoming
    assert not _extracted(result).is_valid


def test_extract_defaults_to_empty_context() -> None:
    assert W3CTraceContextPropagator().extract({"traceparent": "junk"}) == Context()


def test_extract_drops_only_tracestate_when_tracestate_is_invalid() -> None:
    carrier = {"traceparent": VALID, "tracestate": "foo=1,foo=2"}

    span_context = _extracted(W3CTraceContextPropagator().extract(carrier))

    assert span_context.trace_id == TRACE_ID
    assert len(span_context.trace_state) == 0


def test_inject_without_span_writes_nothing() -> None:
    carrier: dict[str, str] = {}

    W3CTraceContextPropagator().inject(carrier, context=Context())

    assert carrier == {}


def test_inject_omits_empty_tracestate() -> None:
    carrier: dict[str, str] = {}
    context = trace.set_span_in_context(NonRecordingSpan(_span_context()))

    W3CTraceContextPropagator().inject(carrier, context=context)

    assert carrier == {"traceparent": VALID}


def test_inject_writes_tracestate() -> None:
    carrier: dict[str, str] = {}
    state = TraceState([("rojo", "1"), ("congo", "2")])
    context = trace.set_span_in_context(NonRecordingSpan(_span_context(state=state)))

    W3CTraceContextPropagator().inject(carrier, context=context)

    assert carrier == {"traceparent": VALID, "tracestate": "rojo=1,congo=2"}


def test_inject_of_extracted_context_zeroes_unknown_flags() -> None:
    propagator = W3CTraceContextPropagator()
    extracted = propagator.extract({"traceparent": f"cc-{TRACE_HEX}-{SPAN_HEX}-ff-future"})
    carrier: dict[str, str] = {}

    propagator.inject(carrier, context=extracted)

    # Downgraded to version 00, unknown trailing field gone, only Level 2 flags left.
    assert carrier == {"traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-03"}


def test_round_trip_through_sdk_span() -> None:
    propagator = W3CTraceContextPropagator()
    incoming = {"traceparent": VALID, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}
    tracer = _provider().get_tracer(__name__)
    outgoing: dict[str, str] = {}

    with tracer.start_as_current_span("handler", context=propagator.extract(incoming)) as span:
        propagator.inject(outgoing)

    version, trace_hex, parent_hex, flags = outgoing["traceparent"].split("-")
    assert (version, trace_hex, flags) == ("00", TRACE_HEX, "01")
    assert parent_hex == f"{span.get_span_context().span_id:016x}"
    assert parent_hex != SPAN_HEX
    assert outgoing["tracestate"] == incoming["tracestate"]


@pytest.mark.parametrize(
    ("incoming_flags", "outgoing_flags"),
    [
        pytest.param("03", "03", id="random kept"),
        pytest.param("02", "02", id="random kept when parent not sampled"),
        pytest.param("01", "01", id="random not invented for a foreign trace id"),
        pytest.param("00", "00", id="nothing set"),
        pytest.param("fd", "01", id="unknown bits not propagated, random unset stays unset"),
    ],
)
def test_child_spans_keep_the_random_flag_of_the_incoming_trace(
    incoming_flags: str, outgoing_flags: str
) -> None:
    # Level 2: the random-trace-id flag must be propagated unchanged for the same trace id.
    # The SDK does this at span creation; this guards the SDK version we rely on.
    propagator = W3CTraceContextPropagator()
    incoming = {"traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-{incoming_flags}"}
    tracer = _provider().get_tracer(__name__)
    outgoing: dict[str, str] = {}

    with tracer.start_as_current_span("handler", context=propagator.extract(incoming)):
        propagator.inject(outgoing)

    assert outgoing["traceparent"].startswith(f"00-{TRACE_HEX}-")
    assert outgoing["traceparent"].endswith(f"-{outgoing_flags}")


def test_locally_started_trace_is_marked_random() -> None:
    tracer = _provider().get_tracer(__name__)
    outgoing: dict[str, str] = {}

    with tracer.start_as_current_span("root", context=Context()) as span:
        W3CTraceContextPropagator().inject(outgoing)

    # RandomIdGenerator makes all 128 bits random, so the SDK sets random-trace-id on roots.
    assert span.get_span_context().trace_flags.random_trace_id
    assert outgoing["traceparent"].endswith("-03")


# --------------------------------------------------------------------------------------------
# ASGI / global propagator
# --------------------------------------------------------------------------------------------


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items",
        "raw_path": b"/items",
        "root_path": "",
        "query_string": b"",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 12345),
        "headers": list(headers),
    }


def test_asgi_getter_two_traceparent_lines_start_new_trace() -> None:
    scope = _scope(
        (b"traceparent", VALID.encode()),
        (b"traceparent", VALID.encode()),
        (b"tracestate", b"foo=1"),
    )

    context = W3CTraceContextPropagator().extract(scope, getter=asgi_getter)

    assert not _extracted(context).is_valid


def test_asgi_getter_combines_tracestate_lines_and_ignores_header_case() -> None:
    scope = _scope(
        (b"TraceParent", VALID.encode()),
        (b"tracestate", b"foo=1,bar=2"),
        (b"TRACESTATE", b"baz=3"),
    )

    span_context = _extracted(W3CTraceContextPropagator().extract(scope, getter=asgi_getter))

    assert span_context.trace_id == TRACE_ID
    assert span_context.trace_state.to_header() == "foo=1,bar=2,baz=3"


def test_asgi_getter_duplicate_tracestate_key_across_lines_drops_tracestate() -> None:
    scope = _scope(
        (b"traceparent", VALID.encode()),
        (b"tracestate", b"foo=1"),
        (b"tracestate", b"foo=2"),
    )

    span_context = _extracted(W3CTraceContextPropagator().extract(scope, getter=asgi_getter))

    assert span_context.trace_id == TRACE_ID
    assert len(span_context.trace_state) == 0


@pytest.fixture
def restore_global_propagator() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    try:
        yield
    finally:
        propagate.set_global_textmap(saved)


@pytest.mark.usefixtures("restore_global_propagator")
def test_install_propagators_sets_trace_context_and_baggage() -> None:
    install_propagators()
    carrier: dict[str, str] = {}
    context = baggage.set_baggage("correlation_id", "abc-123", context=Context())
    context = trace.set_span_in_context(NonRecordingSpan(_span_context()), context)

    propagate.inject(carrier, context=context)

    assert propagate.get_global_textmap().fields == {"traceparent", "tracestate", "baggage"}
    assert carrier == {"traceparent": VALID, "baggage": "correlation_id=abc-123"}
    extracted = propagate.extract(carrier)
    assert baggage.get_baggage("correlation_id", extracted) == "abc-123"
    assert _extracted(extracted).trace_id == TRACE_ID
    # The stock propagator would continue the trace of the first line; ours must not.
    assert not _extracted(propagate.extract({"traceparent": [VALID, VALID]})).is_valid


@pytest.mark.usefixtures("restore_global_propagator")
async def test_asgi_middleware_starts_new_trace_on_duplicate_traceparent() -> None:
    # Drives the same call path FastAPI instrumentation uses: the global propagator with
    # asgi_getter over the raw scope headers.
    install_propagators()
    exporter = InMemorySpanExporter()
    provider = _provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    middleware = OpenTelemetryMiddleware(
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    duplicated = _scope((b"traceparent", VALID.encode()), (b"traceparent", VALID.encode()))
    single = _scope((b"traceparent", VALID.encode()))

    await middleware(duplicated, receive, send)
    await middleware(single, receive, send)

    fresh, continued = exporter.get_finished_spans()
    assert fresh.parent is None
    assert fresh.context.trace_id != TRACE_ID
    assert continued.parent is not None
    assert continued.parent.span_id == SPAN_ID
    assert continued.context.trace_id == TRACE_ID

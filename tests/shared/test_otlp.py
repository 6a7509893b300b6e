"""The fast OTLP span encoding decodes to exactly the request the SDK's encoder builds."""

from __future__ import annotations

import enum
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from intellipost.shared.otlp import EncodedSpans, encode_spans, install


def decoded(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans(spans).SerializePartialToString())
    return request


def assert_same_as_sdk(spans: list[ReadableSpan]) -> None:
    ours = decoded(spans)
    theirs = sdk_encode_spans(spans)
    assert ours == theirs, f"\nours:\n{ours}\nsdk:\n{theirs}"


@pytest.fixture
def sdk_spans() -> Iterator[list[ReadableSpan]]:
    """Spans from real SDK tracers: two resources, scopes with and without versions."""
    exporter = InMemorySpanExporter()
    providers = [
        TracerProvider(resource=Resource.create({"service.name": "one", "k8s.pod.uid": 7})),
        TracerProvider(
            resource=Resource({"service.name": "two", "tags": ("a", "b")}, "https://s/1")
        ),
    ]
    for provider in providers:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(0x03),
        trace_state=TraceState([("vendor", "v1"), ("other", "x=y")]),
    )
    for provider in providers:
        tracer = provider.get_tracer("intellipost.test", "1.2.3", schema_url="https://s/2")
        plain = provider.get_tracer("plain")
        with tracer.start_as_current_span(
            "GET /api/v1/items/{id}",
            context=set_span_in_context(NonRecordingSpan(remote)),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.response.status_code": 200,
                "big": 2**62,
                "negative": -5,
                "ratio": 0.25,
                "ok": True,
                "no": False,
                "words": ["ñandú", "b"],
                "numbers": [1, 2, 3],
                "floats": (0.5, 1.5),
                "flags": [True, False],
                "empty": "",
            },
            links=[Link(remote, {"link.kind": "follows"})],
        ) as server:
            server.add_event("started", {"attempt": 1})
            server.add_event("bare")
            with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
                child.set_status(Status(StatusCode.ERROR, "upstream said no"))
                child.record_exception(ValueError("bad value"))
            for kind in (SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER):
                with plain.start_as_current_span(f"kind {kind.name}", kind=kind) as span:
                    span.set_status(StatusCode.OK)
    yield list(exporter.get_finished_spans())
    for provider in providers:
        provider.shutdown()


def test_sdk_spans_encode_as_the_sdk_encodes_them(sdk_spans: list[ReadableSpan]) -> None:
    assert len(sdk_spans) >= 10
    assert_same_as_sdk(sdk_spans)
    assert isinstance(encode_spans(sdk_spans), EncodedSpans)


def test_each_span_alone_encodes_the_same(sdk_spans: list[ReadableSpan]) -> None:
    for span in sdk_spans:
        assert_same_as_sdk([span])


def _readable(attributes: dict[str, object], **kwargs: object) -> ReadableSpan:
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        "hand made",
        context=context,
        attributes=attributes,  # type: ignore[arg-type]
        start_time=1,
        end_time=2,
        resource=Resource({"service.name": "x"}),
        instrumentation_scope=kwargs.pop("scope", None),  # type: ignore[arg-type]
        events=kwargs.pop("events", ()),  # type: ignore[arg-type]
    )


def test_values_the_sdk_span_would_not_keep_still_encode_the_same() -> None:
    spans = [
        _readable({"nothing": None, "mapping": {"a": 1, "b": ["x"]}, "raw": b"\x00\xff"}),
        _readable({"list with none": [None, "a"]}, scope=InstrumentationScope("s", None)),
        _readable({}, events=[Event("e", {"a": "b"}, timestamp=5)]),
    ]
    assert_same_as_sdk(spans)


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize("value", [2**64, Colour.RED, object()])
def test_a_value_only_the_sdk_knows_how_to_treat_is_left_to_the_sdk(value: object) -> None:
    spans = [_readable({"fine": "yes", "odd": value})]
    assert not isinstance(encode_spans(spans), EncodedSpans)
    assert decoded(spans) == sdk_encode_spans(spans)


def test_installing_makes_the_otlp_http_exporter_use_it() -> None:
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    install()
    install()  # idempotent
    assert trace_exporter.encode_spans is encode_spans  # type: ignore[attr-defined]

"""Lean spans for the gateway's hot path: one SERVER span per request, one CLIENT per call.

The SDK's span guards every attribute with a lock and a validator and builds bounded
containers for events and links it never gets; on the gateway, which makes two spans per
proxied request, that was a large share of the CPU a request costs. ``LeanSpan`` keeps the
SDK's decisions (its sampler, id generator and resource) and hands the finished span to
the SDK's span processors, so exporting, batching and the OTLP wire format are the SDK's;
with no exporter configured nothing is kept once the span ends. Ids still propagate and
still reach every log line either way.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.util import types
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intellipost.shared.correlation import ROUTE_KEY
from intellipost.shared.tracecontext import parse_traceparent, parse_tracestate

SCOPE_NAME = "intellipost.gateway"
_MAX_ATTRIBUTES = 128
_UNSET = Status(StatusCode.UNSET)
_VALUE_TYPES = (str, bool, int, float)
_baggage = W3CBaggagePropagator()
# One object for every span: exporters group spans by scope, and equal-but-distinct
# scopes compare their attributes on every lookup.
_SCOPE = InstrumentationScope(SCOPE_NAME)


class _Carrier:
    """Getter over the few header values the propagators read (one list per name)."""

    @staticmethod
    def get(carrier: dict[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key)

    @staticmethod
    def keys(carrier: dict[str, list[str]]) -> list[str]:
        return list(carrier)


class LeanSpan(trace.Span, ReadableSpan):
    """A recording span without the SDK span's locks and limits: it lives on one event loop.

    It is the SDK's ``ReadableSpan`` too, so span processors and exporters take it as is.
    """

    def __init__(
        self,
        tracing: Tracing,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
    ) -> None:
        ReadableSpan.__init__(
            self,
            name,
            context,
            parent,
            tracing.resource,
            attributes,
            [],
            (),
            kind,
            None,
            _UNSET,
            time.time_ns(),
            None,
            tracing.scope,
        )
        self._tracing = tracing
        self._open = True

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # always set by the tracer

    def is_recording(self) -> bool:
        return self._open

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        attributes: dict[str, Any] = self._attributes  # type: ignore[assignment]
        if not self._open or (key not in attributes and len(attributes) >= _MAX_ATTRIBUTES):
            return
        if isinstance(value, _VALUE_TYPES):
            attributes[key] = value
        elif isinstance(value, Sequence) and all(isinstance(v, _VALUE_TYPES) for v in value):
            attributes[key] = tuple(value)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._open:
            self._events.append(Event(name, attributes, timestamp))  # type: ignore[attr-defined]

    def update_name(self, name: str) -> None:
        if self._open:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: UNSET never overrides, and OK is final.
        if not self._open or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        event: dict[str, Any] = {
            "exception.type": (
                f"{module}.{kind.__qualname__}" if module != "builtins" else kind.__qualname__
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if not self._open:
            return
        self._open = False
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._tracing.processor.on_end(self)


class Tracing:
    """Starts the gateway's spans with the SDK tracer provider's sampler, ids and processors.

    When the process has no SDK provider (telemetry off), spans are the API's no-op ones.
    """

    def __init__(self) -> None:
        tracer = trace.get_tracer(SCOPE_NAME)
        self.enabled = isinstance(tracer, SdkTracer)
        self.tracer = tracer
        if isinstance(tracer, SdkTracer):
            self.sampler = tracer.sampler
            self.ids = tracer.id_generator
            self.resource = tracer.resource
            self.processor = tracer.span_processor
        self.scope = _SCOPE

    def start(
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        parent_context: Context | None = None,
    ) -> trace.Span:
        """A started span; ``parent`` None (or invalid) starts a new trace.

        ``parent_context`` is what the sampler sees; it is built from ``parent`` when
        not given.
        """
        if not self.enabled:
            return self.tracer.start_span(name, parent_context, kind, attributes)
        if parent is not None and not parent.is_valid:
            parent = None
        if parent is None:
            trace_id = self.ids.generate_trace_id()
        else:
            trace_id = parent.trace_id
            if parent_context is None:
                parent_context = set_span_in_context(NonRecordingSpan(parent))
        sampled = self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, ())
        decision = sampled.decision
        flags = TraceFlags.SAMPLED if decision is Decision.RECORD_AND_SAMPLE else TraceFlags.DEFAULT
        # W3C Level 2 random-trace-id flag: inherited, or ours when our ids are random.
        if self.ids.is_trace_id_random() if parent is None else parent.trace_flags & 0x02:
            flags |= TraceFlags.RANDOM_TRACE_ID
        context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=sampled.trace_state,
        )
        if decision is Decision.DROP:
            return NonRecordingSpan(context)
        if sampled.attributes:
            attributes.update(sampled.attributes)
        span = LeanSpan(self, name, context, parent, kind, attributes)
        self.processor.on_start(span, parent_context)  # type: ignore[arg-type]
        return span


def extract(headers: dict[str, list[str]]) -> tuple[SpanContext | None, Context | None]:
    """The remote parent and a context holding it and any baggage, from request headers.

    The same rules as the installed propagators (``intellipost.shared.tracecontext``,
    W3C baggage), read straight from the few headers they use.
    """
    parent: SpanContext | None = None
    context: Context | None = None
    traceparent = headers.get("traceparent")
    if traceparent is not None:
        parent = parse_traceparent(traceparent)
        if parent is not None:
            tracestate = headers.get("tracestate")
            if tracestate:
                parent = SpanContext(
                    parent.trace_id,
                    parent.span_id,
                    is_remote=True,
                    trace_flags=parent.trace_flags,
                    trace_state=parse_tracestate(tracestate),
                )
            context = set_span_in_context(NonRecordingSpan(parent))
    if "baggage" in headers:
        context = _baggage.extract(headers, context or Context(), getter=_Carrier)  # type: ignore[arg-type]
    return parent, context


class ServerSpanMiddleware:
    """One SERVER span per request, child of an incoming valid ``traceparent``.

    The stock ASGI instrumentation makes three spans per request (the send/receive ones
    among them) and costs the gateway a large share of its throughput; this makes one, with
    the stable HTTP semantic-convention attributes. Health and metrics paths are not traced.
    """

    def __init__(self, app: ASGIApp, *, excluded_prefixes: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.excluded_prefixes = excluded_prefixes
        self.tracing = Tracing()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.excluded_prefixes):
            await self.app(scope, receive, send)
            return

        carrier: dict[str, list[str]] = {}
        user_agent = None
        for name, value in scope["headers"]:
            if name == b"traceparent" or name == b"tracestate" or name == b"baggage":
                carrier.setdefault(name.decode(), []).append(value.decode("latin-1"))
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        parent, parent_context = extract(carrier) if carrier else (None, None)

        method: str = scope["method"]
        # The required stable-convention attributes and little more. The query string
        # stays out (it may carry secrets).
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if user_agent:
            attributes["user_agent.original"] = user_agent

        span = self.tracing.start(method, SpanKind.SERVER, parent, attributes, parent_context)
        token = otel_context.attach(set_span_in_context(span, parent_context))
        status = 0

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            route = scope.get(ROUTE_KEY) or getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            if status:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)

"""A lean pure-ASGI server span for the gateway's hot path (W3C context continued)."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Only these headers matter to the propagators; scanning for them once is cheaper than
# building a full header mapping per request.
_PROPAGATION_HEADERS = {b"traceparent", b"tracestate", b"baggage"}
ROUTE_KEY = "intellipost.route"


class _ListGetter(Getter[dict[str, list[str]]]):
    def get(self, carrier: dict[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key)

    def keys(self, carrier: dict[str, list[str]]) -> list[str]:
        return list(carrier)


_getter = _ListGetter()


class ServerSpanMiddleware:
    """One SERVER span per request, child of an incoming valid ``traceparent``.

    The stock ASGI instrumentation makes three spans per request (the send/receive ones
    among them) and costs the gateway a large share of its throughput; this makes one, with
    the stable HTTP semantic-convention attributes. Health and metrics paths are not traced.
    """

    def __init__(self, app: ASGIApp, *, excluded_prefixes: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.excluded_prefixes = excluded_prefixes
        self.tracer = trace.get_tracer("intellipost.gateway")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.excluded_prefixes):
            await self.app(scope, receive, send)
            return

        carrier: dict[str, list[str]] = {}
        user_agent = None
        for name, value in scope["headers"]:
            if name in _PROPAGATION_HEADERS:
                carrier.setdefault(name.decode(), []).append(value.decode("latin-1"))
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        parent = propagate.extract(carrier, getter=_getter) if carrier else None

        method: str = scope["method"]
        # The required stable-convention attributes and little more: the SDK validates each
        # attribute, and this runs on every request. The query string stays out (secrets).
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if user_agent:
            attributes["user_agent.original"] = user_agent

        span = self.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
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

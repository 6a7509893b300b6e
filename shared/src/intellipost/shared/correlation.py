"""Pure ASGI middleware: correlation and request ids, baggage, traceresponse, access log."""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterable
from urllib.parse import unquote

import orjson
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intellipost.shared.context import (
    authorization_var,
    correlation_id_var,
    request_id_var,
    user_id_var,
)
from intellipost.shared.errors import PROBLEM_MEDIA_TYPE, problem_body
from intellipost.shared.logging import get_structured_logger
from intellipost.shared.tracecontext import format_traceresponse

BAGGAGE_KEY = "correlation_id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BAGGAGE_ITEM = re.compile(r"(?:^|,)\s*correlation_id\s*=\s*([^,;\s]*)")
_QUIET_PREFIX = "/health"
# The route template of a request routed by something other than Starlette (the gateway's
# dispatcher puts the matched prefix here); Starlette's own goes in scope["route"].
ROUTE_KEY = "intellipost.route"
_OUR_HEADERS = frozenset({b"x-correlation-id", b"x-request-id"})
_OUR_HEADERS_TRACED = _OUR_HEADERS | {b"traceresponse"}

log = get_structured_logger("shared.correlation")


def valid_correlation_id(value: str) -> bool:
    return _VALID_ID.fullmatch(value) is not None


# Random bytes for ids, read from the OS 4 KiB at a time: one getrandom syscall per 256 ids
# instead of one per id. BytesIO.read is atomic under the GIL, so threads never share bytes.
_random = io.BytesIO()


def _reseed() -> None:
    global _random
    _random = io.BytesIO(os.urandom(4096))


# A forked child must not hand out the parent's remaining bytes a second time.
os.register_at_fork(after_in_child=_reseed)
_VARIANT = "89ab"


def new_id() -> str:
    """A random UUID4 string, built directly: `str(uuid.uuid4())` costs several times more
    and this runs on every request of every hop."""
    raw = _random.read(16)
    if len(raw) != 16:
        _reseed()
        raw = _random.read(16)
    h = raw.hex()
    # Version nibble 4; the variant nibble's top bits 10 (RFC 9562), the rest random.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _from_baggage(raw: str) -> str | None:
    # Baggage values are percent-encoded (W3C Baggage); ':' arrives as %3A.
    match = _BAGGAGE_ITEM.search(raw)
    return unquote(match.group(1)) if match else None


class CorrelationMiddleware:
    """Gives every request a trusted correlation id and its own request id.

    An incoming ``X-Correlation-ID`` (or the ``correlation_id`` baggage member) is kept when
    it matches ``^[A-Za-z0-9._:-]{1,128}$``; otherwise a new UUID replaces it and a
    low-severity security event records why, never the raw value. Both ids are echoed on the
    response with a W3C ``traceresponse``; outgoing calls pick them up from contextvars and
    OTel baggage. One access line is written per request (health probes only when they fail).
    Exceptions that escape the app become a problem+json 500 here, so that the response
    still carries the ids and the access line its status.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self.access_log = get_structured_logger(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        began = time.perf_counter()
        incoming: str | None = None
        baggage_header: str | None = None
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                incoming = value.decode("latin-1")
            elif name == b"baggage":
                baggage_header = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if incoming is None and baggage_header is not None:
            incoming = _from_baggage(baggage_header)

        if incoming is None:
            correlation_id = new_id()
        elif valid_correlation_id(incoming):
            correlation_id = incoming
        else:
            correlation_id = new_id()
            log.security_event(
                "invalid_correlation_id",
                "low",
                reason="does not match ^[A-Za-z0-9._:-]{1,128}$",
                length=len(incoming),
                replaced_by=correlation_id,
                client=_client(scope),
            )
        request_id = new_id()

        span = trace.get_current_span()
        span_context = span.get_span_context()
        if span_context.is_valid:
            span.set_attribute("correlation.id", correlation_id)
        traceresponse = (
            format_traceresponse(span_context).encode() if span_context.is_valid else None
        )

        tokens = (
            correlation_id_var.set(correlation_id),
            request_id_var.set(request_id),
            authorization_var.set(authorization),
            user_id_var.set(None),
        )
        ctx_token = otel_context.attach(baggage.set_baggage(BAGGAGE_KEY, correlation_id))
        extra_headers = [
            (b"x-correlation-id", correlation_id.encode()),
            (b"x-request-id", request_id.encode()),
        ]
        ours = _OUR_HEADERS
        if traceresponse is not None:
            extra_headers.append((b"traceresponse", traceresponse))
            ours = _OUR_HEADERS_TRACED

        status = 0
        sent = 0

        async def send_with_ids(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _merge(message.get("headers", ()), extra_headers, ours)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except Exception as exc:
            if status:
                log.exception("unhandled error after the response started", path=scope["path"])
                raise
            log.exception(
                "unhandled error",
                path=scope["path"],
                method=scope["method"],
                error=type(exc).__name__,
            )
            body = orjson.dumps(
                problem_body(
                    500,
                    title="Internal Server Error",
                    detail="The server could not complete the request; it has been logged.",
                    instance=scope["path"],
                )
            )
            await send_with_ids(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_ids({"type": "http.response.body", "body": body})
        finally:
            path: str = scope["path"]
            if status >= 400 or not path.startswith(_QUIET_PREFIX):
                self.access_log.access(
                    method=scope["method"],
                    path=path,
                    route=scope.get(ROUTE_KEY) or getattr(scope.get("route"), "path", None),
                    status=status,
                    duration_ms=(time.perf_counter() - began) * 1000,
                    response_bytes=sent,
                    client=_client(scope),
                )
            otel_context.detach(ctx_token)
            correlation_id_var.reset(tokens[0])
            request_id_var.reset(tokens[1])
            authorization_var.reset(tokens[2])
            user_id_var.reset(tokens[3])


def _merge(
    headers: Iterable[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    ours: frozenset[bytes],
) -> list[tuple[bytes, bytes]]:
    # The ids this hop decided win over anything an upstream (or the app) put there.
    merged = [pair for pair in headers if pair[0].lower() not in ours]
    merged.extend(extra)
    return merged


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None

"""The reverse proxy: streams a request to its upstream and the answer back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import orjson
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Receive, Scope, Send

from intellipost.gateway.config import GatewayConfig
from intellipost.gateway.tracing import Tracing
from intellipost.gateway.upstream import (
    Connection,
    Origin,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeoutError,
)
from intellipost.shared.context import correlation_id_var
from intellipost.shared.errors import PROBLEM_MEDIA_TYPE, problem_body, problem_type
from intellipost.shared.logging import get_structured_logger
from intellipost.shared.tracecontext import format_traceparent

log = get_structured_logger("gateway.proxy")

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Decided by this hop, not copied from the client: ids, trace context, forwarding facts,
# and the body's framing (Content-Length is written again by the proxy; Expect was
# answered by the server in front of the app).
_REPLACED = frozenset(
    {
        b"host",
        b"x-correlation-id",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
        b"baggage",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"content-length",
        b"expect",
    }
)
_DROP_REQUEST = HOP_BY_HOP | _REPLACED
# uvicorn writes its own Date; a second one from the upstream would duplicate it.
_DROP_RESPONSE = HOP_BY_HOP | {b"date", b"server"}
# Safe to send twice (RFC 9110 §9.2.2): retried once when a pooled connection turns out
# to have been closed by the upstream before anything came back.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Bodies that declare at most this many bytes are read whole and sent in one ASGI message;
# larger ones, and bodies of unknown length, stream.
_BUFFER_LIMIT = 64 * 1024
_PROBLEM_TYPE = PROBLEM_MEDIA_TYPE.encode()
_baggage = W3CBaggagePropagator()


class ClientDisconnectedError(Exception):
    """The client went away while its request body was being forwarded."""


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    origin: Origin
    # Any path the upstream's URL carries, put before every forwarded path.
    base_path: bytes

    @classmethod
    def from_url(cls, name: str, url: str) -> Upstream:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream {name!r} needs an http(s) URL, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = Origin(parts.scheme, parts.hostname, port)
        return cls(name, origin, parts.path.rstrip("/").encode("latin-1"))


class Proxy:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.upstreams = {
            name: Upstream.from_url(name, url) for name, url in config.upstreams().items()
        }
        table: list[tuple[str, Upstream]] = []
        for prefix, name in config.routes.items():
            if name not in self.upstreams:
                raise ValueError(f"route {prefix!r} names unknown upstream {name!r}")
            table.append((prefix.rstrip("/") or "/", self.upstreams[name]))
        # Longest prefix first, so /api/v1/users/me never matches a shorter /api/v1/user.
        self.routes = sorted(table, key=lambda r: -len(r[0]))
        self.pool = UpstreamPool(
            max_connections=config.upstream_max_connections,
            connect_timeout=config.upstream_connect_timeout_seconds,
            read_timeout=config.upstream_timeout_seconds,
        )
        self.trust_forwarded = config.trust_forwarded_headers
        self.tracing: Tracing | None = None

    async def start(self) -> None:
        # Made here, once the app has set up the tracer provider.
        self.tracing = Tracing()
        self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    def match(self, path: str) -> tuple[str, Upstream] | None:
        for prefix, upstream in self.routes:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return prefix, upstream
        return None

    async def forward(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream) -> None:
        assert self.tracing is not None, "proxy not started"
        method: str = scope["method"]
        parsed = self._request_head(scope, upstream)
        if parsed is None:
            # Only a request the server in front should already have refused gets here.
            log.security_event(
                "malformed_request",
                "medium",
                reason="framing headers or line breaks in the request head",
                path=scope["path"],
                upstream=upstream.name,
            )
            await send_problem(
                send,
                400,
                "The request's framing headers are not valid.",
                slug="bad-request",
                instance=scope["path"],
            )
            return
        head, content_length, chunked = parsed

        context = otel_context.get_current()
        parent = trace.get_current_span(context).get_span_context()
        # Few attributes: this runs on every request. The query string stays out of the
        # span (it may carry secrets).
        span = self.tracing.start(
            method,
            SpanKind.CLIENT,
            parent,
            {
                "http.request.method": method,
                "server.address": upstream.origin.host,
                "server.port": upstream.origin.port,
                "url.path": scope["path"],
            },
            context,
        )
        span_context = span.get_span_context()
        if span_context.is_valid:
            head += b"traceparent: %s\r\n" % format_traceparent(span_context).encode()
            if span_context.trace_state:
                head += b"tracestate: %s\r\n" % span_context.trace_state.to_header().encode()
        baggage_header = _baggage_header(context)
        if baggage_header:
            head += b"baggage: %s\r\n" % baggage_header

        conn: Connection | None = None
        started = False
        try:
            # The body: none, whole (one write with the head), or streamed as it arrives.
            body = b""
            streamed = False
            if chunked or content_length:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnectedError
                body = message.get("body", b"")
                streamed = bool(message.get("more_body"))
            if streamed and chunked:
                head += b"transfer-encoding: chunked\r\n\r\n"
            elif streamed:
                assert content_length is not None
                head += b"content-length: %d\r\n\r\n" % content_length
            elif content_length is not None or chunked:
                head += b"content-length: %d\r\n\r\n" % len(body)
            else:
                head += b"\r\n"

            replayable = not streamed and method in _IDEMPOTENT
            fresh = False
            while True:
                conn = await self.pool.acquire(upstream.origin, fresh=fresh)
                try:
                    if streamed:
                        conn.send(head, head_only=method == "HEAD", buffer_limit=_BUFFER_LIMIT)
                        if not await _send_body(conn, body, receive, chunked):
                            conn.discard()
                    else:
                        conn.send(
                            head + body if body else head,
                            head_only=method == "HEAD",
                            buffer_limit=_BUFFER_LIMIT,
                        )
                    whole = await conn.response()
                    break
                except UpstreamError as exc:
                    if not (replayable and conn.reused and exc.before_response):
                        raise
                    # The upstream closed this pooled connection while it sat idle.
                    self.pool.release(conn)
                    conn = None
                    fresh = True

            status = conn.status
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            headers = _response_headers(conn.headers, status)
            started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if whole is not None:
                await send({"type": "http.response.body", "body": whole})
                return
            await _relay_stream(conn, receive, send)
        except UpstreamTimeoutError as exc:
            span.set_status(Status(StatusCode.ERROR, "timeout"))
            span.record_exception(exc)
            if started:
                raise
            log.warning("upstream timed out", upstream=upstream.name, path=scope["path"])
            await send_problem(
                send,
                504,
                f"The {upstream.name} service did not answer in time.",
                slug="upstream-timeout",
                instance=scope["path"],
                upstream=upstream.name,
            )
        except UpstreamError as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.record_exception(exc)
            if started:
                raise
            log.warning(
                "upstream unreachable",
                upstream=upstream.name,
                path=scope["path"],
                error=type(exc).__name__,
                reason=str(exc),
            )
            await send_problem(
                send,
                502,
                f"The {upstream.name} service is unreachable right now; try again shortly.",
                slug="upstream-unavailable",
                instance=scope["path"],
                upstream=upstream.name,
            )
        except ClientDisconnectedError:
            # Nobody is left to answer; the upstream's half-sent request is dropped with
            # its connection.
            span.set_status(Status(StatusCode.ERROR, "client disconnected"))
        finally:
            if conn is not None:
                self.pool.release(conn)
            span.end()

    def _request_head(
        self, scope: Scope, upstream: Upstream
    ) -> tuple[bytes, int | None, bool] | None:
        """The request line and headers to send upstream, without framing or trace headers.

        Also the client's declared body length and whether its body is chunked; None when
        those framing headers are not valid.
        """
        kept: list[tuple[bytes, bytes]] = []
        host: bytes | None = None
        content_length: int | None = None
        chunked = False
        incoming_for: bytes | None = None
        incoming_proto: bytes | None = None
        incoming_host: bytes | None = None
        connection_tokens: list[bytes] | None = None
        for pair in scope["headers"]:
            name = pair[0]
            if name not in _DROP_REQUEST:
                kept.append(pair)
            elif name == b"host":
                host = pair[1]
            elif name == b"content-length":
                value = pair[1]
                if content_length is not None or not value.isdigit():
                    return None
                content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection":
                if connection_tokens is None:
                    connection_tokens = []
                connection_tokens.extend(t.strip().lower() for t in pair[1].split(b","))
            elif name == b"x-forwarded-for":
                incoming_for = pair[1]
            elif name == b"x-forwarded-proto":
                incoming_proto = pair[1]
            elif name == b"x-forwarded-host":
                incoming_host = pair[1]
        if chunked:
            content_length = None  # Transfer-Encoding overrides Content-Length (RFC 9112 §6.3)
        if connection_tokens:
            # Headers the client listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
            kept = [pair for pair in kept if pair[0] not in connection_tokens]

        client = scope.get("client")
        client_ip = client[0].encode() if client else b"unknown"
        proto: bytes = scope.get("scheme", "http").encode()
        if self.trust_forwarded:
            fwd_for = incoming_for + b", " + client_ip if incoming_for else client_ip
            fwd_proto = incoming_proto or proto
            fwd_host = incoming_host or host
        else:
            fwd_for, fwd_proto, fwd_host = client_ip, proto, host

        # Path and query go upstream byte for byte as the client sent them (no re-quoting).
        target = upstream.base_path + (scope.get("raw_path") or scope["path"].encode())
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        lines = [
            b"%s %s HTTP/1.1" % (scope["method"].encode(), target),
            b"host: " + upstream.origin.authority,
            *[name + b": " + value for name, value in kept],
            b"x-forwarded-for: " + fwd_for,
            b"x-forwarded-proto: " + fwd_proto,
        ]
        if fwd_host:
            lines.append(b"x-forwarded-host: " + fwd_host)
        correlation_id = correlation_id_var.get()
        if correlation_id:
            lines.append(b"x-correlation-id: " + correlation_id.encode())
        lines.append(b"")
        head = b"\r\n".join(lines)
        # Whatever the server in front let through, no value may end a line or the head
        # early: one CR LF per line and no bare CR, LF or NUL (no request smuggling).
        if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
            return None
        if b"\0" in head:
            return None
        return head, content_length, chunked


async def _send_body(conn: Connection, first: bytes, receive: Receive, chunked: bool) -> bool:
    """Stream the request body upstream; False when the upstream answered before its end."""
    chunk = first
    more = True
    while True:
        if chunk:
            conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await conn.drain()
        if not more:
            break
        if conn.answered or conn.closed:
            return False
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        more = bool(message.get("more_body"))
    if chunked:
        conn.write(b"0\r\n\r\n")
    return True


async def _relay_stream(conn: Connection, receive: Receive, send: Send) -> None:
    """Relay a streamed answer; a client that goes away ends it and its upstream connection.

    The server keeps accepting ``send`` after a disconnect without saying so, so a watcher
    waits for ``http.disconnect`` meanwhile (instead of reading a large answer for nobody).
    """
    watcher = asyncio.ensure_future(_until_disconnect(receive))

    def client_gone(done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            conn.abort(UpstreamError("the client went away"))

    watcher.add_done_callback(client_gone)
    try:
        while chunk := await conn.read():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except UpstreamError:
        if watcher.done() and not watcher.cancelled() and watcher.exception() is None:
            raise ClientDisconnectedError from None
        raise
    finally:
        watcher.cancel()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body nobody will forward


def _response_headers(headers: list[tuple[bytes, bytes]], status: int) -> list[tuple[bytes, bytes]]:
    kept = [pair for pair in headers if pair[0] not in _DROP_RESPONSE]
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    if status == 204 or status == 304:
        # No body follows, whatever length the upstream announced for the resource.
        tokens.add(b"content-length")
    if tokens:
        kept = [pair for pair in kept if pair[0] not in tokens]
    return kept


def _baggage_header(context: Context) -> bytes | None:
    entries = baggage.get_all(context)
    if len(entries) == 1:
        # The usual case, only the correlation id: the W3C propagator's encoding, directly.
        [(key, value)] = entries.items()
        return (quote_plus(str(key)) + "=" + quote_plus(str(value))).encode()
    carrier: dict[str, str] = {}
    _baggage.inject(carrier, context)
    header = carrier.get("baggage")
    return header.encode() if header else None


async def send_problem(
    send: Send, status: int, detail: str, *, slug: str, instance: str, **extra: Any
) -> None:
    body = orjson.dumps(
        problem_body(status, detail=detail, type_=problem_type(slug), instance=instance, **extra)
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _PROBLEM_TYPE),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

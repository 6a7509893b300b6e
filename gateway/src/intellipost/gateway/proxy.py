"""The reverse proxy: streams a request to its upstream and the answer back (aiohttp client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from intellipost.gateway.config import GatewayConfig
from intellipost.shared.context import correlation_id_var
from intellipost.shared.errors import PROBLEM_MEDIA_TYPE, problem_body, problem_type
from intellipost.shared.logging import get_structured_logger

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
# Decided by this hop, not copied from the client: ids, trace context, forwarding facts.
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
    }
)
_DROP_REQUEST = HOP_BY_HOP | _REPLACED
# uvicorn writes its own Date; a second one from the upstream would duplicate it.
_DROP_RESPONSE = HOP_BY_HOP | {b"date", b"server"}
# Small bodies are read whole and sent in one ASGI message; larger ones stream.
_BUFFER_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: URL

    @property
    def base(self) -> str:
        return str(self.url)

    @property
    def address(self) -> tuple[str, int]:
        return self.url.host or "", self.url.port or 80


class Proxy:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.upstreams = {
            name: Upstream(name, URL(url.rstrip("/"))) for name, url in config.upstreams().items()
        }
        table: list[tuple[str, Upstream]] = []
        for prefix, name in config.routes.items():
            if name not in self.upstreams:
                raise ValueError(f"route {prefix!r} names unknown upstream {name!r}")
            table.append((prefix.rstrip("/") or "/", self.upstreams[name]))
        # Longest prefix first, so /api/v1/users/me never matches a shorter /api/v1/user.
        self.routes = sorted(table, key=lambda r: -len(r[0]))
        self.session: aiohttp.ClientSession | None = None
        self.tracer = trace.get_tracer("intellipost.gateway")
        self.trust_forwarded = config.trust_forwarded_headers

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.config.upstream_max_connections,
            ttl_dns_cache=60,
            keepalive_timeout=30,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.config.upstream_connect_timeout_seconds,
                sock_read=self.config.upstream_timeout_seconds,
            ),
            # Bytes pass through untouched: no decompression, no cookies, no added headers.
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def match(self, path: str) -> tuple[str, Upstream] | None:
        for prefix, upstream in self.routes:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return prefix, upstream
        return None

    async def forward(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream) -> None:
        assert self.session is not None, "proxy not started"
        method: str = scope["method"]
        headers, has_body, fwd_for, fwd_proto, fwd_host = self._request_headers(scope)
        headers["X-Forwarded-For"] = fwd_for
        headers["X-Forwarded-Proto"] = fwd_proto
        if fwd_host:
            headers["X-Forwarded-Host"] = fwd_host
        correlation_id = correlation_id_var.get()
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id

        # Path and query go upstream byte for byte as the client sent them (no re-quoting).
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = upstream.base + raw_path.decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        url = URL(target, encoded=True)

        data: bytes | AsyncIterator[bytes] | None = None
        if has_body:
            first = await receive()
            if first.get("more_body"):
                data = _stream_body(first.get("body", b""), receive)
            else:
                data = first.get("body", b"")

        # Few attributes: the SDK validates each one, and this runs on every request. The
        # query string stays out of the span (it may carry secrets).
        span = self.tracer.start_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": upstream.address[0],
                "server.port": upstream.address[1],
                "url.path": scope["path"],
            },
        )
        propagate.inject(headers, context=trace.set_span_in_context(span))
        started = False
        try:
            async with self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=False,
            ) as response:
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                response_headers = [
                    (name.lower(), value)
                    for name, value in response.raw_headers
                    if name.lower() not in _DROP_RESPONSE
                ]
                length = response.content_length
                if method == "HEAD" or (length is not None and length <= _BUFFER_LIMIT):
                    body = await response.read() if method != "HEAD" else b""
                    started = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": response.status,
                            "headers": response_headers,
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
                started = True
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": response_headers,
                    }
                )
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
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
        except aiohttp.ClientError as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.record_exception(exc)
            if started:
                raise
            log.warning(
                "upstream unreachable",
                upstream=upstream.name,
                path=scope["path"],
                error=type(exc).__name__,
            )
            await send_problem(
                send,
                502,
                f"The {upstream.name} service is unreachable right now; try again shortly.",
                slug="upstream-unavailable",
                instance=scope["path"],
                upstream=upstream.name,
            )
        finally:
            span.end()

    def _request_headers(self, scope: Scope) -> tuple[CIMultiDict[str], bool, str, str, str | None]:
        headers: CIMultiDict[str] = CIMultiDict()
        has_body = False
        host: str | None = None
        incoming_for: str | None = None
        incoming_proto: str | None = None
        incoming_host: str | None = None
        connection_tokens: set[bytes] = set()
        for name, value in scope["headers"]:
            if name in _DROP_REQUEST:
                if name == b"host":
                    host = value.decode("latin-1")
                elif name == b"connection":
                    connection_tokens.update(t.strip().lower() for t in value.split(b","))
                elif name == b"transfer-encoding":
                    has_body = True
                elif name == b"x-forwarded-for":
                    incoming_for = value.decode("latin-1")
                elif name == b"x-forwarded-proto":
                    incoming_proto = value.decode("latin-1")
                elif name == b"x-forwarded-host":
                    incoming_host = value.decode("latin-1")
                continue
            if name == b"content-length":
                has_body = value != b"0"
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        # Headers the client listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
        for token in connection_tokens:
            headers.popall(token.decode("latin-1"), None)

        client = scope.get("client")
        client_ip = client[0] if client else "unknown"
        proto: str = scope.get("scheme", "http")
        if self.trust_forwarded:
            fwd_for = f"{incoming_for}, {client_ip}" if incoming_for else client_ip
            return headers, has_body, fwd_for, incoming_proto or proto, incoming_host or host
        return headers, has_body, client_ip, proto, host


async def _stream_body(first: bytes, receive: Receive) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client went away")
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body"):
            return


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
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The proxy's own HTTP/1.1 client and the proxy's framing, against scripted raw servers.

Each test runs a real TCP server on a free port that answers with the exact bytes the test
gives it, so the framings a well-behaved upstream rarely sends (a body ended by closing the
connection, interim answers, two answers to one request, conflicting lengths) get covered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from intellipost.gateway.config import GatewayConfig
from intellipost.gateway.proxy import Proxy
from intellipost.gateway.upstream import (
    Origin,
    UpstreamConnectError,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeoutError,
)
from intellipost.shared.context import correlation_id_var
from tests.support import free_port

OK_HELLO = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"


@dataclass
class Request:
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: bytes) -> list[bytes]:
        values = []
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                values.append(value.strip())
        return values


# What the server does with a request: returns the bytes to answer (None: close at once).
Script = Callable[[Request, int], Awaitable[bytes | None]]


@dataclass
class ScriptedServer:
    script: Script
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    close_after_answer: bool = False
    server: asyncio.Server | None = None
    port: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def origin(self) -> Origin:
        return Origin("http", "127.0.0.1", self.port)

    async def start(self) -> ScriptedServer:
        self.port = free_port()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        self.drop_connections()
        await self.server.wait_closed()

    def drop_connections(self) -> None:
        """Close every open connection, as an upstream ending idle keep-alives does."""
        for writer in self.writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = Request(head, b"")
                if request.header(b"transfer-encoding"):
                    request.body = await _read_chunked(reader)
                elif request.header(b"content-length"):
                    request.body = await reader.readexactly(
                        int(request.header(b"content-length")[0])
                    )
                self.requests.append(request)
                answer = await self.script(request, len(self.requests))
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    return
        finally:
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def answer(data: bytes, delay: float = 0.0) -> Script:
    async def script(request: Request, n: int) -> bytes:
        if delay:
            await asyncio.sleep(delay)
        return data

    return script


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(max_connections=8, connect_timeout=1.0, read_timeout=1.0)
    pool.start()
    try:
        yield pool
    finally:
        await pool.close()


async def serve(script: Script, **kwargs: Any) -> ScriptedServer:
    return await ScriptedServer(script, **kwargs).start()


async def exchange(
    pool: UpstreamPool,
    server: ScriptedServer,
    request: bytes = b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n",
    *,
    buffer_limit: int = 65536,
    head_only: bool = False,
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """One request; the status, headers, whole body, and whether the connection was pooled."""
    conn = await pool.acquire(server.origin)
    try:
        conn.send(request, head_only=head_only, buffer_limit=buffer_limit)
        body = await conn.response()
        if body is None:
            parts = []
            while chunk := await conn.read():
                parts.append(chunk)
            body = b"".join(parts)
        return conn.status, conn.headers, body, conn.reusable
    finally:
        pool.release(conn)


# --------------------------------------------------------------------------- the client


async def test_a_content_length_answer_is_read_whole_and_its_connection_reused(
    pool: UpstreamPool,
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        for _ in range(3):
            status, headers, body, reusable = await exchange(pool, server)
            assert (status, body, reusable) == (200, b"hello", True)
            assert (b"content-type", b"text/plain") in headers
        assert server.connections == 1
    finally:
        await server.close()


async def test_a_chunked_answer_streams_decoded_and_the_connection_is_reused(
    pool: UpstreamPool,
) -> None:
    async def chunked(request: Request, n: int) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
        )

    server = await serve(chunked)
    try:
        status, _, body, reusable = await exchange(pool, server, buffer_limit=0)
        assert (status, body, reusable) == (200, b"hello world", True)
        await exchange(pool, server)
        assert server.connections == 1
    finally:
        await server.close()


async def test_a_large_declared_body_streams_in_pieces(pool: UpstreamPool) -> None:
    payload = bytes(range(256)) * 1024
    server = await serve(
        answer(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload)
    )
    try:
        status, _, body, reusable = await exchange(pool, server, buffer_limit=1024)
        assert (status, body == payload, reusable) == (200, True, True)
    finally:
        await server.close()


async def test_a_body_ended_by_closing_is_complete_and_its_connection_not_reused(
    pool: UpstreamPool,
) -> None:
    server = await serve(
        answer(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end"),
        close_after_answer=True,
    )
    try:
        status, _, body, reusable = await exchange(pool, server)
        assert (status, body, reusable) == (200, b"until the end", False)
        await exchange(pool, server)
        assert server.connections == 2
    finally:
        await server.close()


async def test_a_head_answer_completes_at_its_headers(pool: UpstreamPool) -> None:
    server = await serve(answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"))
    try:
        status, headers, body, reusable = await asyncio.wait_for(
            exchange(pool, server, b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n", head_only=True), 2
        )
        assert (status, body, reusable) == (200, b"", False)
        assert (b"content-length", b"1000") in headers
    finally:
        await server.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_no_content_answers_have_no_body_and_keep_the_connection(
    pool: UpstreamPool, status: int
) -> None:
    server = await serve(answer(b"HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n" % status))
    try:
        assert await exchange(pool, server) == (status, [(b"content-length", b"0")], b"", True)
        await exchange(pool, server)
        assert server.connections == 1
    finally:
        await server.close()


async def test_interim_answers_are_skipped(pool: UpstreamPool) -> None:
    server = await serve(
        answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
            + OK_HELLO
        )
    )
    try:
        status, headers, body, reusable = await exchange(pool, server)
        assert (status, body, reusable) == (200, b"hello", True)
        assert (b"link", b"</a>") not in headers
    finally:
        await server.close()


async def test_an_answer_with_both_length_and_chunked_framing_is_refused(
    pool: UpstreamPool,
) -> None:
    server = await serve(
        answer(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
            b"0\r\n\r\nhello"
        )
    )
    try:
        with pytest.raises(UpstreamError):
            await exchange(pool, server)
    finally:
        await server.close()


async def test_a_second_answer_to_one_request_drops_the_connection(pool: UpstreamPool) -> None:
    server = await serve(answer(OK_HELLO + OK_HELLO))
    try:
        status, _, body, _ = await exchange(pool, server)
        assert (status, body) == (200, b"hello")
        await asyncio.sleep(0.05)
        await exchange(pool, server)
        # The connection that carried the extra answer was never handed out again.
        assert server.connections == 2
    finally:
        await server.close()


async def test_a_malformed_answer_is_an_upstream_error(pool: UpstreamPool) -> None:
    server = await serve(answer(b"HTTP/1.1 abc OK\r\n\r\n"))
    try:
        with pytest.raises(UpstreamError):
            await exchange(pool, server)
    finally:
        await server.close()


async def test_a_connection_the_upstream_closed_while_idle_is_not_handed_out(
    pool: UpstreamPool,
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        await exchange(pool, server)
        server.drop_connections()
        await asyncio.sleep(0.05)
        status, _, body, _ = await exchange(pool, server)
        assert (status, body) == (200, b"hello")
        assert server.connections == 2
    finally:
        await server.close()


async def test_closing_before_any_answer_is_flagged_as_such(pool: UpstreamPool) -> None:
    async def hang_up(request: Request, n: int) -> bytes | None:
        return None

    server = await serve(hang_up)
    try:
        with pytest.raises(UpstreamError) as raised:
            await exchange(pool, server)
        assert raised.value.before_response
    finally:
        await server.close()


async def test_an_upstream_that_stalls_times_out(pool: UpstreamPool) -> None:
    server = await serve(answer(OK_HELLO, delay=5))
    began = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeoutError):
            await exchange(pool, server)
        assert time.monotonic() - began < 3
    finally:
        await server.close()


async def test_a_refused_connection_is_a_connect_error(pool: UpstreamPool) -> None:
    with pytest.raises(UpstreamConnectError):
        await pool.acquire(Origin("http", "127.0.0.1", free_port()))
    # The failed attempt gave its slot back.
    assert pool._in_use == 0


async def test_at_the_limit_a_request_waits_for_a_free_connection() -> None:
    pool = UpstreamPool(max_connections=1, connect_timeout=1.0, read_timeout=2.0)
    pool.start()
    server = await serve(answer(OK_HELLO, delay=0.2))
    try:
        results = await asyncio.gather(exchange(pool, server), exchange(pool, server))
        assert [r[2] for r in results] == [b"hello", b"hello"]
        assert server.connections == 1
    finally:
        await pool.close()
        await server.close()


async def test_at_the_limit_a_request_gives_up_after_the_connect_timeout() -> None:
    pool = UpstreamPool(max_connections=1, connect_timeout=0.2, read_timeout=5.0)
    pool.start()
    server = await serve(answer(OK_HELLO, delay=1.0))
    try:
        first = asyncio.create_task(exchange(pool, server))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamConnectError):
            await exchange(pool, server)
        assert (await first)[2] == b"hello"
    finally:
        await pool.close()
        await server.close()


# --------------------------------------------------------------------------- the proxy


@dataclass
class Client:
    """The ASGI side of one request: what the proxy read and what it answered.

    Like uvicorn, ``receive`` gives the body, then waits until the client goes away
    (``leave()``) and says ``http.disconnect``; ``send`` keeps accepting after that.
    """

    body_parts: list[bytes]
    sent: list[dict[str, Any]] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    body_given: bool = False
    leave_after_first_chunk: bool = False

    async def receive(self) -> dict[str, Any]:
        if self.body_parts:
            part = self.body_parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(self.body_parts)}
        if not self.body_given:
            self.body_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(dict(message))
        if self.leave_after_first_chunk and message.get("more_body"):
            self.gone.set()

    def leave(self) -> None:
        self.gone.set()

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def scope(
    method: str = "GET",
    path: str = "/api/v1/users/me",
    headers: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]] = (),
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "client": ("10.1.2.3", 4444),
        "headers": [(b"host", b"gateway.test"), *headers],
    }


@pytest.fixture
async def proxy_for() -> AsyncIterator[Callable[[ScriptedServer], Awaitable[Proxy]]]:
    proxies: list[Proxy] = []

    async def make(server: ScriptedServer) -> Proxy:
        proxy = Proxy(
            GatewayConfig(
                user_url=f"http://127.0.0.1:{server.port}",
                upstream_timeout_seconds=1.0,
                upstream_connect_timeout_seconds=1.0,
            )
        )
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.close()


async def forward(
    proxy: Proxy, request: dict[str, Any], body: list[bytes], client: Client | None = None
) -> Client:
    client = client or Client(list(body))
    await proxy.forward(request, client.receive, client.send, proxy.upstreams["user"])
    return client


async def test_a_whole_body_goes_with_its_length_even_if_the_client_chunked_it(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        proxy = await proxy_for(server)
        request = scope("POST", headers=[(b"transfer-encoding", b"chunked")])
        client = await forward(proxy, request, [b'{"a": 1}'])
        assert (client.status, client.body) == (200, b"hello")
        seen = server.requests[0]
        assert seen.header(b"content-length") == [b"8"]
        assert seen.header(b"transfer-encoding") == []
        assert seen.body == b'{"a": 1}'
    finally:
        await server.close()


async def test_a_streamed_body_goes_chunked_and_arrives_whole(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        proxy = await proxy_for(server)
        request = scope("POST", headers=[(b"transfer-encoding", b"chunked")])
        client = await forward(proxy, request, [b"one,", b"two,", b"three"])
        assert client.status == 200
        seen = server.requests[0]
        assert seen.header(b"transfer-encoding") == [b"chunked"]
        assert seen.header(b"content-length") == []
        assert seen.body == b"one,two,three"
    finally:
        await server.close()


async def test_a_streamed_body_with_a_declared_length_keeps_it(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        proxy = await proxy_for(server)
        request = scope("PUT", headers=[(b"content-length", b"10")])
        client = await forward(proxy, request, [b"01234", b"56789"])
        assert client.status == 200
        seen = server.requests[0]
        assert seen.header(b"content-length") == [b"10"]
        assert seen.body == b"0123456789"
    finally:
        await server.close()


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-note", b"a\r\nx-injected: 1")],
        [(b"x-note", b"a\nx-injected: 1")],
        [(b"x-note", b"a\x00b")],
        [(b"content-length", b"5"), (b"content-length", b"6")],
        [(b"content-length", b"+5")],
    ],
)
async def test_framing_a_server_should_have_refused_never_reaches_the_upstream(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]], headers: list[tuple[bytes, bytes]]
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        proxy = await proxy_for(server)
        client = await forward(proxy, scope("POST", headers=headers), [b"hello"])
        assert client.status == 400
        assert server.connections == 0
    finally:
        await server.close()


async def test_a_path_with_a_line_break_never_reaches_the_upstream(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    server = await serve(answer(OK_HELLO))
    try:
        proxy = await proxy_for(server)
        request = scope(path="/api/v1/users/x HTTP/1.1\r\nhost: evil\r\n\r\nGET /admin")
        client = await forward(proxy, request, [])
        assert client.status == 400
        assert server.connections == 0
    finally:
        await server.close()


async def test_an_early_answer_ends_the_upload_and_is_relayed(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    received = 0

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 413 Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
        )
        await writer.drain()
        # Like a real server, read (and drop) what keeps coming until the client stops.
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            received += len(chunk)
        writer.close()

    port = free_port()
    listener = await asyncio.start_server(refuse, "127.0.0.1", port)
    server = ScriptedServer(answer(b""), port=port)
    try:
        proxy = await proxy_for(server)
        request = scope("POST", headers=[(b"content-length", b"%d" % (64 * 65536))])
        client = await forward(proxy, request, [b"x" * 65536] * 64)
        assert (client.status, client.body) == (413, b"nope")
        await asyncio.sleep(0.05)
        # The upload stopped once the answer came: most of the 4 MiB was never sent.
        assert received < 64 * 65536
    finally:
        listener.close()
        await listener.wait_closed()


async def test_an_idempotent_request_is_sent_again_when_a_pooled_connection_was_dead(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    async def hang_up_on_second(request: Request, n: int) -> bytes | None:
        # The second request arrives on the pooled connection, which "was already closed".
        return None if n == 2 else OK_HELLO

    server = await serve(hang_up_on_second)
    try:
        proxy = await proxy_for(server)
        assert (await forward(proxy, scope(), [])).status == 200
        client = await forward(proxy, scope(), [])
        assert (client.status, client.body) == (200, b"hello")
        assert len(server.requests) == 3
    finally:
        await server.close()


async def test_a_post_is_not_sent_twice(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    async def hang_up_on_second(request: Request, n: int) -> bytes | None:
        return None if n == 2 else OK_HELLO

    server = await serve(hang_up_on_second)
    try:
        proxy = await proxy_for(server)
        await forward(proxy, scope(), [])
        client = await forward(proxy, scope("POST", headers=[(b"content-length", b"2")]), [b"{}"])
        assert client.status == 502
        assert len(server.requests) == 2
    finally:
        await server.close()


async def test_the_correlation_id_and_forwarding_facts_are_the_gateways(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    server = await serve(answer(OK_HELLO))
    token = correlation_id_var.set("cid-1")
    try:
        proxy = await proxy_for(server)
        request = scope(
            headers=[
                (b"x-correlation-id", b"spoofed"),
                (b"x-forwarded-for", b"6.6.6.6"),
                (b"connection", b"x-hop"),
                (b"x-hop", b"secret"),
                (b"expect", b"100-continue"),
            ]
        )
        await forward(proxy, request, [])
        seen = server.requests[0]
        assert seen.line == b"GET /api/v1/users/me HTTP/1.1"
        assert seen.header(b"host") == [b"127.0.0.1:%d" % server.port]
        assert seen.header(b"x-correlation-id") == [b"cid-1"]
        assert seen.header(b"x-forwarded-for") == [b"10.1.2.3"]
        assert seen.header(b"x-forwarded-host") == [b"gateway.test"]
        assert seen.header(b"x-hop") == []
        assert seen.header(b"expect") == []
    finally:
        correlation_id_var.reset(token)
        await server.close()


async def test_hop_by_hop_answer_headers_are_dropped(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    server = await serve(
        answer(
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, x-private\r\nx-private: 1\r\n"
            b"keep-alive: timeout=5\r\ndate: Mon\r\nx-kept: yes\r\ncontent-length: 2\r\n\r\nok"
        )
    )
    try:
        proxy = await proxy_for(server)
        client = await forward(proxy, scope(), [])
        names = [name for name, _ in client.sent[0]["headers"]]
        assert names == [b"x-kept", b"content-length"]
    finally:
        await server.close()


async def test_a_client_that_leaves_ends_a_streamed_answer_and_its_upstream_connection(
    proxy_for: Callable[[ScriptedServer], Awaitable[Proxy]],
) -> None:
    sent_parts = 0
    stopped = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent_parts
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(200):
                writer.write(b"5\r\nchunk\r\n")
                await writer.drain()
                sent_parts += 1
                await asyncio.sleep(0.01)
                if reader.at_eof():
                    break
        except ConnectionError:
            pass
        finally:
            stopped.set()
            writer.close()

    port = free_port()
    listener = await asyncio.start_server(stream, "127.0.0.1", port)
    try:
        proxy = await proxy_for(ScriptedServer(answer(b""), port=port))
        client = Client([], leave_after_first_chunk=True)
        await asyncio.wait_for(forward(proxy, scope(), [], client), 5)
        await asyncio.wait_for(stopped.wait(), 5)
        assert client.status == 200
        # The proxy stopped reading for nobody: far fewer than the 200 parts went out.
        assert sent_parts < 100
    finally:
        listener.close()
        await listener.wait_closed()

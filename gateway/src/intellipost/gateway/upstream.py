"""The proxy's HTTP/1.1 client: pooled keep-alive connections on asyncio protocols.

A general client (aiohttp, httpx) spends most of the proxy's per-request budget on objects
the proxy never needs (request/response wrappers, cookie jars, timers per request, stream
readers). This one does the least a correct HTTP/1.1 exchange needs: one write for the
request head and a buffered body, httptools (llhttp) to parse the answer, one wake-up for a
small response, and one sweep every tick for every timeout instead of a timer per request.

Framing is always decided here, never copied from the client: a body goes with its
``Content-Length`` or chunked by us; a response is parsed strictly (llhttp rejects a
``Content-Length`` next to ``Transfer-Encoding``, bad chunk sizes and the like), and a
connection is pooled again only after a complete request and a complete keep-alive
response with nothing extra on the wire.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

# Response bytes held for a client that reads slowly before reading from the upstream pauses.
_HIGH_WATER = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange (the proxy answers 502)."""

    def __init__(self, message: str, *, before_response: bool = False) -> None:
        super().__init__(message)
        # True when nothing of an answer arrived: a reused connection that fails this way
        # was closed by the upstream while idle, and an idempotent request may be sent again.
        self.before_response = before_response


class UpstreamConnectError(UpstreamError):
    """No connection could be made (refused, unresolvable, timed out, or none free)."""


class UpstreamTimeoutError(UpstreamError):
    """The upstream made no progress for the read timeout (the proxy answers 504)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where connections go: ``http://host:port`` (or ``https``)."""

    scheme: str
    host: str
    port: int
    # The Host header value: the port only when it is not the scheme's default.
    authority: bytes = field(init=False)

    def __post_init__(self) -> None:
        default = 443 if self.scheme == "https" else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        object.__setattr__(self, "authority", netloc.encode("idna"))


class Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time (no pipelining)."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        # The sweeper fails the exchange when the proxy waits past this (loop time).
        self.deadline = math.inf
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._active = False
        self._head_only = False
        self._buffer_limit = 0
        self._received = False
        self._interim = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._content_length: int | None = None
        self._chunked = False
        self._buffering = True
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        self._chunks: list[bytes] = []
        self._pending = 0
        self._error: UpstreamError | None = None

    # ------------------------------------------------------------------ exchange API

    def send(self, data: bytes, *, head_only: bool, buffer_limit: int) -> None:
        """Start an exchange: write the request head (and a buffered body) in one go.

        The response body is held until complete when it declares at most
        ``buffer_limit`` bytes; otherwise ``response()`` returns at the headers.
        """
        assert self.transport is not None
        self._reset_exchange()
        self._active = True
        self._head_only = head_only
        self._buffer_limit = buffer_limit
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the upstream reads what was written, or answers, or goes away."""
        while self._write_paused and not (self.closed or self._headers_done or self._error):
            await self._wait()

    @property
    def answered(self) -> bool:
        """Whether the response head has arrived (the upstream may answer before the
        request body is complete, e.g. to refuse it)."""
        return self._headers_done

    async def response(self) -> bytes | None:
        """Wait for the response head; the whole body (bytes) when it was buffered."""
        while self._error is None and not (
            self._complete or (self._headers_done and not self._buffering)
        ):
            await self._wait()
        if self._error is not None:
            raise self._error
        if self._complete:
            body = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
            self._chunks = []
            return body
        return None

    async def read(self) -> bytes:
        """The next piece of a streamed body; ``b""`` once it is complete."""
        while not self._chunks and self._error is None and not self._complete:
            await self._wait()
        if self._chunks:
            data = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
            self._chunks = []
            self._pending = 0
            if self._reading_paused and self.transport is not None and not self.closed:
                self._reading_paused = False
                self.transport.resume_reading()
            return data
        if self._error is not None:
            raise self._error
        return b""

    @property
    def reusable(self) -> bool:
        """A complete keep-alive exchange that left nothing unread behind."""
        return (
            self._complete
            and self._keep_alive
            and not self._head_only
            and not self.closed
            and self._error is None
        )

    def discard(self) -> None:
        """Never pool this connection again (its request was cut short)."""
        self._keep_alive = False

    def finish(self) -> None:
        self._active = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self, error: UpstreamError) -> None:
        """Fail the exchange and drop the connection (timeouts, protocol errors)."""
        self._fail(error)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def waiting(self) -> bool:
        """Whether the proxy is waiting on the upstream right now (timeouts apply)."""
        return self._waiter is not None

    async def _wait(self) -> None:
        loop = self.pool.loop
        self.deadline = loop.time() + self.pool.read_timeout
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._wake()

    # ------------------------------------------------------------------ protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the asyncio.Transport methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._active or self._complete:
            # Bytes nobody asked for: the connection's framing can't be trusted any more.
            self.abort(UpstreamError("unexpected data from the upstream"))
            return
        self._received = True
        self.deadline = self.pool.loop.time() + self.pool.read_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.abort(UpstreamError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self.abort(UpstreamError(f"malformed response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self._active and not self._complete:
            if self._headers_done and self._content_length is None and not self._chunked:
                # A body delimited by the end of the connection (RFC 9112 §6.3 rule 8).
                self._keep_alive = False
                self._complete = True
                self._wake()
            else:
                self._fail(
                    UpstreamError(
                        "the upstream closed the connection",
                        before_response=not self._received,
                    )
                )
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self.deadline = self.pool.loop.time() + self.pool.read_timeout
        self._wake()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        if self._complete:
            # A second answer to one request: raising makes the parser fail the exchange.
            raise UpstreamError("more than one response to a request")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._content_length = int(value)  # llhttp has checked it is one number
        elif name == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._interim = True
            self.headers = []
            self._content_length = None
            self._chunked = False
            return
        self.status = status
        self._headers_done = True
        if self._head_only:
            # llhttp would wait for the body a HEAD answer announces but never sends; the
            # connection is closed after it rather than reused with a confused parser.
            self._keep_alive = False
            self._complete = True
            self._wake()
            return
        length = self._content_length
        self._buffering = status in _NO_BODY_STATUSES or (
            length is not None and length <= self._buffer_limit and not self._chunked
        )
        # Also wakes a request body waiting to drain: an answer ends the upload.
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        self._chunks.append(body)
        if not self._buffering:
            self._pending += len(body)
            if self._pending > _HIGH_WATER and not self._reading_paused:
                assert self.transport is not None
                self._reading_paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._complete:
            return
        self._keep_alive = self.parser.should_keep_alive()
        self._complete = True
        self._wake()


class UpstreamPool:
    """Keep-alive connections to every origin, at most ``max_connections`` in use at once.

    Idle connections are reused newest first and closed after ``idle_timeout`` seconds;
    a request that finds every connection in use waits up to ``connect_timeout`` for one.
    One sweep every ``tick`` seconds fails exchanges that waited on their upstream past
    ``read_timeout`` and closes expired idle connections.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float = 30.0,
    ) -> None:
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.tick = min(max(read_timeout / 8, 0.05), 1.0)
        self._idle: dict[Origin, list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.Task[None] | None = None
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "pool not started"
        return self._loop

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.abort(UpstreamError("the proxy is shutting down"))
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

    async def acquire(self, origin: Origin, *, fresh: bool = False) -> Connection:
        """A connection to ``origin``: an idle one unless ``fresh``, else a new one."""
        deadline: float | None = None
        while True:
            idle = self._idle.get(origin)
            while idle and not fresh:
                conn = idle.pop()
                if not conn.closed:
                    conn.reused = True
                    self._in_use += 1
                    self._busy.add(conn)
                    return conn
            if self._in_use < self.max_connections:
                break
            if deadline is None:
                deadline = self.loop.time() + self.connect_timeout
            await self._wait_for_slot(deadline)
        self._in_use += 1
        try:
            conn = await self._connect(origin)
        except BaseException:
            self._in_use -= 1
            self._hand_over_slot()
            raise
        self._busy.add(conn)
        return conn

    def release(self, conn: Connection) -> None:
        """Give a connection back: pooled when its exchange left it reusable, else closed."""
        self._in_use -= 1
        self._busy.discard(conn)
        if conn.reusable:
            conn.finish()
            conn.idle_since = self.loop.time()
            conn.deadline = math.inf
            self._idle.setdefault(conn.origin, []).append(conn)
        else:
            conn.close()
        if self._waiters:
            self._hand_over_slot()

    def forget(self, conn: Connection) -> None:
        """A connection closed under us: make sure it is never handed out again."""
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def _wait_for_slot(self, deadline: float) -> None:
        """Wait until a connection is given back (or fail at ``deadline``)."""
        remaining = deadline - self.loop.time()
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                await waiter
        except TimeoutError:
            raise UpstreamConnectError("every upstream connection is in use") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _hand_over_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, origin: Origin) -> Connection:
        ssl_context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ssl_context = self._ssl
        factory: Callable[[], Connection] = lambda: Connection(self, origin)  # noqa: E731
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await self.loop.create_connection(
                    factory, origin.host, origin.port, ssl=ssl_context
                )
        except TimeoutError:
            raise UpstreamConnectError("timed out connecting") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect: {type(exc).__name__}") from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.sweep()

    def sweep(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self._busy if c.deadline <= now and c.waiting]:
            conn.abort(UpstreamTimeoutError("the upstream did not answer in time"))
        expired = now - self.idle_timeout
        for idle in self._idle.values():
            while idle and idle[0].idle_since <= expired:
                idle.pop(0).close()

"""The correlation middleware, driven with raw ASGI scopes (bytes no HTTP client would send)."""

from __future__ import annotations

import asyncio
import re
import uuid
from io import StringIO
from typing import Any

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from starlette.types import Message, Receive, Scope, Send

from intellipost.shared.context import correlation_id_var, request_id_var
from intellipost.shared.correlation import CorrelationMiddleware, new_id
from intellipost.shared.logging import configure_logging

VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Recorder:
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}
        self.background: asyncio.Task[dict[str, Any]] | None = None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen = {
            "correlation_id": correlation_id_var.get(),
            "request_id": request_id_var.get(),
            "baggage": baggage.get_baggage("correlation_id"),
        }

        async def later() -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"correlation_id": correlation_id_var.get()}

        # A task started during the request inherits the request's context.
        self.background = asyncio.create_task(later())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": headers,
        "client": ("10.0.0.1", 1234),
    }
    out: dict[bytes, bytes] = {}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            out.update(dict(message["headers"]))

    await app(scope, receive, send)
    return out


@pytest.fixture
def log() -> StringIO:
    sink = StringIO()
    configure_logging(service="t", environment="test", version="1", sink=sink)
    return sink


async def test_a_valid_incoming_id_is_kept_and_echoed(log: StringIO) -> None:
    recorder = Recorder()
    headers = await call(
        CorrelationMiddleware(recorder.app, service="t"), [(b"x-correlation-id", b"abc-123")]
    )
    assert headers[b"x-correlation-id"] == b"abc-123"
    assert recorder.seen["correlation_id"] == "abc-123"
    assert recorder.seen["baggage"] == "abc-123"
    assert recorder.background is not None
    assert (await recorder.background)["correlation_id"] == "abc-123"


async def test_each_hop_gets_its_own_request_id(log: StringIO) -> None:
    recorder = Recorder()
    app = CorrelationMiddleware(recorder.app, service="t")
    first = await call(app, [(b"x-correlation-id", b"same")])
    second = await call(app, [(b"x-correlation-id", b"same")])
    assert first[b"x-request-id"] != second[b"x-request-id"]
    assert recorder.seen["request_id"] == second[b"x-request-id"].decode()


async def test_an_absent_id_is_generated_as_uuid4(log: StringIO) -> None:
    headers = await call(CorrelationMiddleware(Recorder().app, service="t"), [])
    generated = headers[b"x-correlation-id"].decode()
    assert uuid.UUID(generated).version == 4


async def test_the_id_can_arrive_as_w3c_baggage(log: StringIO) -> None:
    recorder = Recorder()
    await call(
        CorrelationMiddleware(recorder.app, service="t"),
        [(b"baggage", b"tenant=acme,correlation_id=from%3Abaggage")],
    )
    assert recorder.seen["correlation_id"] == "from:baggage"


@pytest.mark.parametrize(
    "hostile",
    [
        b"abc\r\nX-Injected: yes",
        b"a" * 129,
        b'{"$ne": null}',
        b"<script>alert(1)</script>",
        b"",
        b"caf\xc3\xa9",
    ],
)
async def test_a_hostile_id_is_replaced_logged_as_security_event_and_never_written(
    log: StringIO, hostile: bytes
) -> None:
    recorder = Recorder()
    headers = await call(
        CorrelationMiddleware(recorder.app, service="t"), [(b"x-correlation-id", hostile)]
    )
    replaced = headers[b"x-correlation-id"].decode()
    assert VALID.match(replaced)
    assert replaced.encode() != hostile
    assert recorder.seen["correlation_id"] == replaced
    written = log.getvalue()
    assert '"security_event":"invalid_correlation_id"' in written
    assert '"severity":"low"' in written
    if hostile:
        assert hostile.decode("latin-1") not in written
        assert "X-Injected" not in written


async def test_contextvars_are_reset_after_the_request(log: StringIO) -> None:
    await call(CorrelationMiddleware(Recorder().app, service="t"), [(b"x-correlation-id", b"x1")])
    assert correlation_id_var.get() is None
    assert request_id_var.get() is None
    assert baggage.get_baggage("correlation_id", otel_context.get_current()) is None


def test_new_id_is_a_random_uuid4() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in list(ids)[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert str(parsed) == value

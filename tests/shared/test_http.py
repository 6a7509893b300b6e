"""The service-to-service client: propagation, forwarded auth, retries only when safe."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from intellipost.shared.context import authorization_var, correlation_id_var
from intellipost.shared.http import ServiceClient
from tests.support import EchoServer, free_port


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().serve()
    yield server
    server.close()


async def test_carries_correlation_id_and_forwards_the_callers_authorization(
    echo: EchoServer,
) -> None:
    client = ServiceClient()
    cid, auth = correlation_id_var.set("cid-77"), authorization_var.set("Bearer caller")
    try:
        response = await client.get(echo.url + "/x")
    finally:
        correlation_id_var.reset(cid)
        authorization_var.reset(auth)
        await client.aclose()
    headers = response.json()["headers"]
    assert headers["x-correlation-id"] == "cid-77"
    assert headers["authorization"] == "Bearer caller"


async def test_forward_auth_false_keeps_the_token_to_itself(echo: EchoServer) -> None:
    client = ServiceClient()
    token = authorization_var.set("Bearer caller")
    try:
        response = await client.get(echo.url + "/x", forward_auth=False)
    finally:
        authorization_var.reset(token)
        await client.aclose()
    assert "authorization" not in response.json()["headers"]


async def test_injects_traceparent_of_a_client_span(echo: EchoServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    client = ServiceClient()
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("caller") as span:
            response = await client.get(echo.url + "/x")
    finally:
        await client.aclose()
    traceparent = response.json()["headers"]["traceparent"]
    assert traceparent.split("-")[1] == format(span.get_span_context().trace_id, "032x")


def _counting(client: ServiceClient) -> list[str]:
    attempts: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        attempts.append(request.method)

    client.raw.event_hooks["request"].append(on_request)
    return attempts


async def test_idempotent_requests_are_retried_on_connection_errors() -> None:
    client = ServiceClient(max_retries=2, backoff_seconds=0.01)
    attempts = _counting(client)
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{free_port()}/x")
    await client.aclose()
    assert len(attempts) == 3


async def test_a_post_is_not_retried_unless_it_has_an_idempotency_key() -> None:
    client = ServiceClient(max_retries=2, backoff_seconds=0.01)
    attempts = _counting(client)
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(httpx.ConnectError):
        await client.post(url, json={})
    assert len(attempts) == 1
    with pytest.raises(httpx.ConnectError):
        await client.post(url, json={}, headers={"Idempotency-Key": "k1"})
    await client.aclose()
    assert len(attempts) == 4


async def test_a_server_answer_is_never_retried(echo: EchoServer) -> None:
    client = ServiceClient(max_retries=3, backoff_seconds=0.01)
    await client.get(echo.url + "/x")
    await client.aclose()
    assert len(echo.requests) == 1

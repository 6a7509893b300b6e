"""The gateway's proxy path, as real processes: routing, headers, streaming, failures."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Component, TokenIssuer, base_env, echo_upstream, free_port

VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Fleet:
    """The gateway in front of the echo upstream; requests carry a valid access token."""

    def __init__(self, gateway: Component, echo: Component, issuer: TokenIssuer) -> None:
        self.gateway = gateway
        self.echo = echo
        self.authorization = f"Bearer {issuer.token('user-proxy', ttl=3600)}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": self.authorization, **kwargs.pop("headers", {})}
        return httpx.request(method, self.gateway.url + path, headers=headers, timeout=20, **kwargs)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("gateway")
    issuer = TokenIssuer().serve()
    echo = echo_upstream(tmp).start(wait="/health/ready")
    dead_port = free_port()
    env = base_env(
        tmp,
        INTELLIPOST_GATEWAY_USER_URL=echo.url,
        INTELLIPOST_GATEWAY_PRODUCT_URL=echo.url,
        INTELLIPOST_GATEWAY_MERCADOLIBRE_URL=echo.url,
        INTELLIPOST_GATEWAY_AI_CONTENT_URL=f"http://127.0.0.1:{dead_port}",
        INTELLIPOST_GATEWAY_UPSTREAM_TIMEOUT_SECONDS="1",
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
    )
    gateway = Component("gateway", free_port(), env, tmp / "gateway.log").start()
    try:
        yield Fleet(gateway, echo, issuer)
    finally:
        gateway.stop()
        echo.stop()
        issuer.close()


def echoed(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    data["header_map"] = dict(data["headers"])
    return data


def test_forwards_method_path_query_and_body_unchanged(fleet: Fleet) -> None:
    body = b'{"name": "zapatillas", "price": 100}'
    response = fleet.request(
        "PATCH",
        "/api/v1/products/abc%2Fdef/x?q=a%20b&q=c",
        content=body,
        headers={"content-type": "application/json"},
    )
    seen = echoed(response)
    assert seen["method"] == "PATCH"
    assert seen["raw_path"] == "/api/v1/products/abc%2Fdef/x"
    assert seen["query"] == "q=a%20b&q=c"
    assert seen["body_sha"] == hashlib.sha256(body).hexdigest()
    assert seen["header_map"]["content-type"] == "application/json"


def test_hop_by_hop_headers_are_stripped_and_forwarding_headers_set(fleet: Fleet) -> None:
    response = fleet.get(
        "/api/v1/users/me",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "must not pass",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "X-Forwarded-For": "6.6.6.6",
            "X-Custom": "kept",
        },
    )
    seen = echoed(response)["header_map"]
    for hop in ("x-secret-hop", "keep-alive", "te", "proxy-authorization"):
        assert hop not in seen, hop
    assert seen["x-custom"] == "kept"
    # Services verify the token again, so it passes unchanged.
    assert seen["authorization"] == fleet.authorization
    # The client's own X-Forwarded-For is not trusted by default: the gateway states the peer.
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"127.0.0.1:{fleet.gateway.port}"
    # The upstream's own hop-by-hop answer headers don't reach the client.
    assert "keep-alive" not in response.headers
    assert response.headers["x-upstream"] == "echo"
    assert len(response.headers.get_list("date")) == 1


def test_request_body_streams_to_the_upstream(fleet: Fleet) -> None:
    chunk = b"x" * 65536
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(80):  # 5 MiB, chunked: no Content-Length
            digest.update(chunk)
            yield chunk

    seen = echoed(fleet.request("POST", "/api/v1/products/upload", content=body()))
    assert seen["body_length"] == 80 * 65536
    assert seen["body_sha"] == digest.hexdigest()
    assert seen["body_messages"] > 1


def test_response_body_streams_back(fleet: Fleet) -> None:
    with httpx.stream(
        "GET",
        fleet.gateway.url + "/api/v1/products/stream?parts=6",
        headers={"Authorization": fleet.authorization},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        chunks = list(response.iter_raw())
    data = b"".join(chunks)
    expected = b"".join(f"part-{i}\n".encode() * 20000 for i in range(6))
    assert data == expected
    assert len(chunks) > 1


def test_upstream_timeout_is_a_504_problem(fleet: Fleet) -> None:
    response = fleet.get("/api/v1/products/slow?seconds=3")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["upstream"] == "product"
    assert problem["status"] == 504
    assert problem["correlation_id"] == response.headers["x-correlation-id"]
    assert "Traceback" not in response.text


def test_unreachable_upstream_is_a_502_problem_without_internals(fleet: Fleet) -> None:
    response = fleet.get("/api/v1/content/anything")
    assert response.status_code == 502
    problem = response.json()
    assert problem["upstream"] == "ai_content"
    assert "127.0.0.1" not in response.text
    assert "Connect" not in response.text


def test_unknown_route_is_a_404_problem(fleet: Fleet) -> None:
    response = fleet.get("/api/v2/whatever")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/route-not-found")
    # A prefix only matches on a path-segment boundary.
    assert fleet.get("/api/v1/usersX").status_code == 404


def test_correlation_id_is_echoed_and_sent_upstream(fleet: Fleet) -> None:
    response = fleet.get("/api/v1/users/me", headers={"X-Correlation-ID": "order-42.retry:1"})
    seen = echoed(response)["header_map"]
    assert response.headers["x-correlation-id"] == "order-42.retry:1"
    assert seen["x-correlation-id"] == "order-42.retry:1"
    # W3C baggage values are percent-encoded.
    assert "correlation_id=order-42.retry%3A1" in seen["baggage"]
    assert VALID_ID.match(response.headers["x-request-id"])


def test_incoming_traceparent_is_continued_upstream(fleet: Fleet) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    response = fleet.get(
        "/api/v1/users/me", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    )
    seen = echoed(response)["header_map"]
    upstream_parent = seen["traceparent"].split("-")
    assert upstream_parent[1] == trace_id
    assert upstream_parent[2] != "b7ad6b7169203331"
    traceresponse = response.headers["traceresponse"].split("-")
    assert traceresponse[1] == trace_id


def test_duplicate_traceparent_starts_a_new_trace(fleet: Fleet) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    raw = _raw_request(
        fleet.gateway.port,
        [
            ("Authorization", fleet.authorization),
            ("traceparent", f"00-{trace_id}-b7ad6b7169203331-01"),
            ("traceparent", f"00-{trace_id}-b7ad6b7169203331-01"),
        ],
    )
    assert raw.startswith(b"HTTP/1.1 200")
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    upstream = dict(body["headers"])["traceparent"]
    assert upstream.split("-")[1] != trace_id


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 200,
        '{"inject": true}',
        "abc%0D%0AX-Injected: yes",
        "evil id with spaces",
    ],
)
def test_hostile_correlation_id_is_replaced_and_never_written_raw(
    fleet: Fleet, hostile: str
) -> None:
    response = fleet.get("/api/v1/users/me", headers={"X-Correlation-ID": hostile})
    assert response.status_code == 200
    replaced = response.headers["x-correlation-id"]
    assert replaced != hostile
    assert VALID_ID.match(replaced)
    assert echoed(response)["header_map"]["x-correlation-id"] == replaced
    assert hostile not in fleet.gateway.output()
    events = fleet.gateway.wait_for_log(
        lambda r: (
            r.get("security_event") == "invalid_correlation_id" and r.get("replaced_by") == replaced
        )
    )
    assert len(events) == 1
    assert events[0]["severity"] == "low"


def test_correlation_id_with_crlf_cannot_inject_headers(fleet: Fleet) -> None:
    raw = _raw_request(
        fleet.gateway.port,
        [("Authorization", fleet.authorization), ("X-Correlation-ID", "abc\r\nX-Injected: yes")],
    )
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    # Either the HTTP parser refuses the request or the value is cut at the line break;
    # in no case does the injected line come back as a header of ours.
    assert b"x-injected" not in head
    assert not head.startswith(b"http/1.1 5")


def test_access_line_per_proxied_request_carries_route_and_status(fleet: Fleet) -> None:
    response = fleet.get("/api/v1/users/me", headers={"X-Correlation-ID": "access-line-1"})
    assert response.status_code == 200
    access = fleet.gateway.wait_for_log(
        lambda r: r.get("correlation_id") == "access-line-1" and r.get("event_type") == "access"
    )
    assert len(access) == 1
    assert access[0]["status"] == 200
    assert access[0]["method"] == "GET"
    assert access[0]["path"] == "/api/v1/users/me"
    assert access[0]["route"] == "/api/v1/users"
    assert access[0]["trace_id"] == response.headers["traceresponse"].split("-")[1]


def _raw_request(port: int, headers: list[tuple[str, str]]) -> bytes:
    lines = ["GET /api/v1/users/me HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)

"""The fleet as real processes: one correlation id and one trace through every hop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import Component, OtlpReceiver, TokenIssuer, base_env, free_port

SERVICES = ["user", "product", "mercadolibre", "ai_content"]
SERVER, CLIENT = 2, 3  # OTLP SpanKind values


@dataclass
class Fleet:
    gateway: Component
    services: dict[str, Component]
    otlp: OtlpReceiver


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    otlp = OtlpReceiver().serve()
    issuer = TokenIssuer().serve()
    ports = {name: free_port() for name in SERVICES}
    env = base_env(
        tmp,
        INTELLIPOST_OTEL_EXPORTER_ENDPOINT=otlp.endpoint,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        **{
            f"INTELLIPOST_GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{p}"
            for n, p in ports.items()
        },
        **{f"INTELLIPOST_{n.upper()}_PORT": str(p) for n, p in ports.items()},
    )
    services = {n: Component(n, ports[n], env, tmp / f"{n}.log") for n in SERVICES}
    gateway = Component("gateway", free_port(), env, tmp / "gateway.log")
    started: list[Component] = []
    try:
        for component in [*services.values(), gateway]:
            component.start(wait="/health/ready")
            started.append(component)
        yield Fleet(gateway, services, otlp)
    finally:
        for component in reversed(started):
            component.stop()
        otlp.close()
        issuer.close()


def test_fleet_info_lists_all_five_components(fleet: Fleet) -> None:
    response = httpx.get(fleet.gateway.url + "/api/v1/info", timeout=10)
    assert response.status_code == 200
    body = response.json()
    names = {c["name"] for c in body["components"]}
    assert names == {"gateway", *SERVICES}
    assert body["healthy"] is True
    assert response.headers["x-correlation-id"]
    assert response.headers["traceresponse"].startswith("00-")


def test_one_correlation_id_and_trace_reach_every_service_log(fleet: Fleet) -> None:
    correlation_id = "fleet-check-0001"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = httpx.get(
        fleet.gateway.url + "/api/v1/info",
        headers={
            "X-Correlation-ID": correlation_id,
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == correlation_id
    assert response.headers["traceresponse"].split("-")[1] == trace_id

    for component in [fleet.gateway, *fleet.services.values()]:
        access = component.wait_for_log(
            lambda r: r.get("correlation_id") == correlation_id and r.get("event_type") == "access"
        )
        assert len(access) == 1, component.module
        lines = [r for r in component.log_records() if r.get("correlation_id") == correlation_id]
        assert all(r["trace_id"] == trace_id for r in lines), component.module


def test_service_server_span_is_child_of_gateway_client_span(fleet: Fleet) -> None:
    trace_id = "5bf92f3577b34da6a3ce929d0e0e4737"
    response = httpx.get(
        fleet.gateway.url + "/api/v1/info",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b8-01"},
        timeout=10,
    )
    assert response.status_code == 200

    def in_trace(span: dict[str, Any]) -> bool:
        return bool(span["trace_id"] == trace_id)

    # Spans are exported when they end, in batches every 100 ms: the gateway's server span
    # only after the client has its answer, and a client span possibly in a later batch than
    # the server span it parents. So wait for each span the assertions read.
    for component in ["gateway", *SERVICES]:
        found = fleet.otlp.wait_for(
            lambda s, name=component: (
                in_trace(s) and s["service"] == f"intellipost-{name}" and s["kind"] == SERVER
            )
        )
        assert found, f"no server span from {component}"
        if component != "gateway":  # the gateway's parent is the caller's, never exported
            parent = found[0]["parent_span_id"]
            assert fleet.otlp.wait_for(lambda s, p=parent: s["span_id"] == p)
    spans = [s for s in fleet.otlp.spans if in_trace(s)]
    by_id = {s["span_id"]: s for s in spans}

    gateway_server = [
        s for s in spans if s["service"] == "intellipost-gateway" and s["kind"] == SERVER
    ]
    assert len(gateway_server) == 1
    assert gateway_server[0]["parent_span_id"] == "00f067aa0ba902b8"
    for service in SERVICES:
        server = next(
            s for s in spans if s["service"] == f"intellipost-{service}" and s["kind"] == SERVER
        )
        parent = by_id[server["parent_span_id"]]
        assert parent["service"] == "intellipost-gateway"
        assert parent["kind"] == CLIENT
        assert (
            server["attributes"]["correlation.id"]
            == gateway_server[0]["attributes"]["correlation.id"]
        )


def test_service_log_lines_match_the_design_schema(fleet: Fleet) -> None:
    httpx.get(fleet.gateway.url + "/api/v1/info", timeout=10)
    required = [
        "timestamp", "level", "logger", "message", "service", "environment", "version",
        "correlation_id", "request_id", "trace_id", "span_id", "module", "function", "line",
    ]  # fmt: skip
    for component in [fleet.gateway, *fleet.services.values()]:
        records = component.log_records()
        assert records, component.module
        for record in records:
            assert list(record)[: len(required)] == required, record
            assert record["timestamp"].endswith("Z")

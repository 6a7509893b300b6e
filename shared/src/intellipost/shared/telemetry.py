"""OpenTelemetry setup: tracer provider, OTLP export when configured, instrumentation."""

from __future__ import annotations

import os

# Must be set before any instrumentation reads it: stable HTTP semantic conventions.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

from intellipost.shared.config import BaseModuleConfig
from intellipost.shared.logging import get_structured_logger
from intellipost.shared.tracecontext import install_propagators

# Probes and scrapes would drown real traces; they are never traced.
EXCLUDED_URLS = r"/health(/live|/ready|/startup)?$,/metrics$"

log = get_structured_logger("shared.telemetry")
_provider: TracerProvider | None = None


def otlp_endpoint(config: BaseModuleConfig) -> str | None:
    return config.otel_exporter_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def _exporter(config: BaseModuleConfig, endpoint: str) -> SpanExporter:
    if config.otel_exporter_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from intellipost.shared import otlp

    # The same request bytes, encoded several times faster: every traced request pays it.
    otlp.install()
    # The HTTP exporter wants the full signal path; a bare collector address is the usual
    # thing people configure.
    if not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


def setup_telemetry(config: BaseModuleConfig) -> TracerProvider:
    """The process's tracer provider (made once; later calls return the same one)."""
    global _provider
    install_propagators()
    if _provider is not None:
        return _provider
    resource = Resource.create(
        {
            "service.name": f"intellipost-{config.service_name}",
            "service.namespace": "intellipost",
            "service.version": config.service_version,
            "deployment.environment.name": config.environment,
        }
    )
    # At ratio 1 the ratio sampler only costs time: every new trace is sampled anyway.
    root = (
        ALWAYS_ON if config.otel_sample_ratio >= 1 else TraceIdRatioBased(config.otel_sample_ratio)
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(root))
    endpoint = otlp_endpoint(config)
    if endpoint:
        provider.add_span_processor(BatchSpanProcessor(_exporter(config, endpoint)))
        log.info("exporting traces", endpoint=endpoint, protocol=config.otel_exporter_protocol)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def instrument_fastapi(app: FastAPI) -> None:
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )


def instrument_httpx(client: httpx.AsyncClient) -> None:
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider)


def shutdown_telemetry() -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis=3000)

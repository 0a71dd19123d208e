"""Tracing: an OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise the no-op tracer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the API and SDK load only when traces are exported (cold start)
    from opentelemetry.sdk.trace import TracerProvider


def setup_tracing(endpoint: str | None, service_name: str = "pulse") -> TracerProvider | None:
    if not endpoint:
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider

"""Trace context crosses the inbox: a batch span links to the edge span that stored each request."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from pulse.adapters_in.worker import _links
from pulse.core.model import Delivery, IngestEnvelope


def test_a_batch_span_links_to_the_edge_span_that_stored_each_envelope() -> None:
    tracer = TracerProvider().get_tracer("test")
    headers: dict[str, str] = {}
    with tracer.start_as_current_span("webhook.store") as edge_span:
        propagate.inject(headers)
    envelope = IngestEnvelope("r1", "aloware", datetime.now(UTC), b"{}", headers)
    untraced = IngestEnvelope("r2", "aloware", datetime.now(UTC), b"{}", {})

    links = _links([Delivery(envelope, "a"), Delivery(untraced, "b")])

    assert [link.context.span_id for link in links] == [edge_span.get_span_context().span_id]
    assert trace.get_current_span().get_span_context().is_valid is False

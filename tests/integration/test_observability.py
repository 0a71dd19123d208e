"""One webhook through the daemon as `pulse serve` builds it (the real container, embedded
stores): `/metrics` tells its whole story, and its trace runs edge → batch → ledger → sink."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from pulse.bootstrap.container import Container
from pulse.bootstrap.settings import Settings
from tests.integration.conftest import sample, sample_body, sample_headers
from tests.unit.test_metrics_exposition import naming_problems, promtool_check_metrics

START_TIMEOUT_SEC = 10
WEBHOOK = "/webhooks/{source}"


@pytest.fixture(scope="session")
def finished_spans() -> InMemorySpanExporter:
    """The SDK's in-memory exporter behind the global provider (set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@dataclass
class Running:
    url: str
    aloware_token: str
    http: aiohttp.ClientSession

    async def page(self) -> str:
        async with self.http.get(self.url + "/metrics") as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            return await response.text()

    async def post_call(self) -> str:
        captured = sample("aloware-call-disposed")
        async with self.http.post(
            self.url + "/webhooks/aloware",
            data=sample_body(captured),
            headers=sample_headers(captured, self.aloware_token),
        ) as response:
            assert response.status == 202
            return str((await response.json())["request_id"])

    async def value_once(self, name: str, labels: dict[str, str], within: float = 10) -> float:
        """A sample's value once it is positive (the worker settles behind the edge)."""
        deadline = time.monotonic() + within
        while (found := sample_value(await self.page(), name, labels)) <= 0:
            assert time.monotonic() < deadline, f"{name}{labels} never showed"
            await asyncio.sleep(0.05)
        return found


def sample_value(page: str, name: str, labels: dict[str, str]) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


@pytest.fixture
async def running(tmp_path: Path, finished_spans: InMemorySpanExporter) -> AsyncIterator[Running]:
    token = secrets.token_urlsafe(24)
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        sink="local",
        inbox="sqlite",
        ledger="sqlite",
        roster="static",
        roster_agents=["42"],
        aloware_secret=token,
        hubspot_client_secret=secrets.token_urlsafe(24),
        # the edge opens spans only when exporting; the test's exporter is the in-memory one
        otel_exporter_otlp_endpoint="http://127.0.0.1:9",
        drain_timeout_sec=5,
    )
    container = Container(settings=settings)
    daemon = await container.daemon()
    task = asyncio.create_task(daemon.run("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while not daemon.started.is_set():  # listening, and every start step done
            assert not task.done(), task.result()
            assert time.monotonic() < deadline, "the daemon did not start"
            await asyncio.sleep(0.02)
        finished_spans.clear()
        async with aiohttp.ClientSession() as http:
            yield Running(f"http://127.0.0.1:{daemon.port}", token, http)
    finally:
        daemon.stop_requested.set()
        await asyncio.wait_for(task, 30)
        closing = container.shutdown_resources()
        if closing is not None:
            await closing


async def test_one_webhook_shows_on_metrics_from_the_edge_to_the_sink(running: Running) -> None:
    await running.post_call()
    accepted = {"source": "aloware", "outcome": "accepted", "reason": "counted"}
    assert await running.value_once("pulse_events_total", accepted) == 1
    async with running.http.get(running.url + "/nowhere"):
        pass

    page = await running.page()

    def value(name: str, **labels: str) -> float:
        return sample_value(page, name, labels)

    posted = {"route": WEBHOOK, "method": "POST", "status": "202"}
    assert value("pulse_http_requests_total", **posted) == 1
    assert value("pulse_http_requests_total", route="unmatched", status="404") == 1
    assert value("pulse_http_request_duration_seconds_count", route=WEBHOOK) == 1
    assert value("pulse_webhooks_received_total", source="aloware") == 1
    assert value("pulse_envelopes_total", source="aloware", outcome="accepted") == 1
    assert value("pulse_batch_duration_seconds_count") >= 1
    assert value("pulse_ledger_duration_seconds_count", operation="claim", outcome="ok") >= 1
    assert value("pulse_ledger_duration_seconds_count", operation="commit", outcome="ok") >= 1
    assert value("pulse_sink_append_duration_seconds_count", sink="local", outcome="ok") == 1
    assert value("pulse_sink_rows_total", sink="local") == 1
    assert value("pulse_job_runs_total", job="sync_agents", outcome="ok") == 1
    assert value("pulse_job_last_run_timestamp_seconds", job="sync_agents") > 0
    assert "pulse_inbox_depth 0.0" in page
    assert naming_problems(page) == []


async def test_the_live_page_passes_promtool_check_metrics(running: Running) -> None:
    await running.post_call()
    await running.value_once("pulse_events_total", {"outcome": "accepted"})

    result = await asyncio.to_thread(promtool_check_metrics, await running.page())

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_webhook_yields_the_chain_edge_batch_ledger_sink(
    running: Running, finished_spans: InMemorySpanExporter
) -> None:
    request_id = await running.post_call()
    await running.value_once("pulse_events_total", {"outcome": "accepted"})
    spans = list(finished_spans.get_finished_spans())

    (edge,) = named(spans, "webhook.store")
    (batch,) = [b for b in named(spans, "inbox.batch") if b.links]
    children = [
        s for s in spans if s.parent is not None and s.parent.span_id == batch.context.span_id
    ]
    by_name = {s.name: s for s in sorted(children, key=lambda s: s.start_time or 0)}

    assert edge.attributes is not None and edge.attributes["pulse.request_id"] == request_id
    assert [link.context.span_id for link in batch.links] == [edge.context.span_id]
    assert {"ledger.claim", "sink.append", "ledger.commit"} <= by_name.keys()
    assert all(s.context.trace_id == batch.context.trace_id for s in children)
    claim = min(named(children, "ledger.claim"), key=lambda s: s.start_time or 0)
    (append,) = named(children, "sink.append")
    commit = max(named(children, "ledger.commit"), key=lambda s: s.start_time or 0)
    assert (claim.end_time or 0) <= (append.start_time or 0)
    assert (append.end_time or 0) <= (commit.start_time or 0)
    assert append.attributes is not None and append.attributes["pulse.rows"] == 1


def test_sample_value_reads_labels_as_a_subset() -> None:
    page = '# HELP pulse_x_total x\n# TYPE pulse_x_total counter\npulse_x_total{a="1",b="2"} 3\n'
    assert sample_value(page, "pulse_x_total", {"a": "1"}) == 3
    assert sample_value(page, "pulse_x_total", {"a": "2"}) == 0

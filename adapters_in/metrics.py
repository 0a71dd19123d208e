"""Every series `GET /metrics` exposes, declared once, and the registry that renders them.

Rendering is `prometheus_client`'s: HELP and TYPE on every family, label values escaped,
histograms with `_bucket`/`_sum`/`_count`. A series not in `FAMILIES` cannot be recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PREFIX = "pulse_"
# From 1 ms (the edge's p99 target is 20 ms) to a minute (a batch behind a throttled sink).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Family:
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    scraped: bool = False
    """Read from a gauge source at scrape time (a snapshot the adapter keeps) instead of
    being recorded as it happens."""


FAMILIES: dict[str, Family] = {
    # the edge
    "http_requests_total": Family(
        "counter",
        "HTTP requests answered, by route template, method and status",
        ("route", "method", "status"),
    ),
    "http_request_duration_seconds": Family(
        "histogram", "Time to answer an HTTP request, by route template", ("route",)
    ),
    "webhooks_received_total": Family(
        "counter", "Webhook requests stored in the inbox", ("source",)
    ),
    "webhooks_rejected_total": Family(
        "counter", "Webhook requests refused before storing, by error code", ("source", "code")
    ),
    # the data plane
    "events_total": Family(
        "counter",
        "Events by source, outcome (accepted, duplicate, gated, ignored, dead_lettered, retry), "
        "reason code and sink (a counted event settles once per sink; '' before any sink)",
        ("source", "outcome", "reason", "sink"),
    ),
    "envelopes_total": Family(
        "counter", "Inbox deliveries processed, by source and outcome", ("source", "outcome")
    ),
    "batch_duration_seconds": Family("histogram", "Time to process one inbox batch"),
    "batch_failures_total": Family("counter", "Batches that raised"),
    "ledger_duration_seconds": Family(
        "histogram", "Ledger calls, by operation and outcome (ok, error)", ("operation", "outcome")
    ),
    "sink_append_duration_seconds": Family(
        "histogram",
        "Fact appends to a sink (waiting in its batcher included), by outcome "
        "(ok, transient, permanent)",
        ("sink", "outcome"),
    ),
    "sink_rows_total": Family("counter", "Fact rows a sink accepted", ("sink",)),
    "sink_requests_total": Family(
        "counter", "HTTP requests a push sink sent", ("sink",), scraped=True
    ),
    "sink_throttled_total": Family(
        "counter",
        "Requests a push sink had answered 429 (retried after Retry-After)",
        ("sink",),
        scraped=True,
    ),
    "sink_retries_total": Family(
        "counter", "Requests a push sink sent again (429, 5xx, timeouts)", ("sink",), scraped=True
    ),
    "sink_failed_requests_total": Family(
        "counter", "Requests a push sink gave up on", ("sink",), scraped=True
    ),
    "sink_queued_rows": Family(
        "gauge", "Rows waiting in a push sink's batcher", ("sink",), scraped=True
    ),
    "sink_requests_in_flight": Family(
        "gauge", "Requests a push sink has pending (Power BI allows 5)", ("sink",), scraped=True
    ),
    "sink_requests_last_hour": Family(
        "gauge",
        "Requests in the dataset's last hour (Power BI: 120/h past 250k rows)",
        ("sink",),
        scraped=True,
    ),
    "sink_rows_last_hour": Family(
        "gauge",
        "Rows added in the dataset's last hour (Power BI allows 1,000,000)",
        ("sink",),
        scraped=True,
    ),
    "breaker_state": Family(
        "gauge",
        "1 for the state each dependency's breaker is in (closed, open, half_open)",
        ("dependency", "state"),
        scraped=True,
    ),
    "breaker_opened_total": Family(
        "counter", "Times a dependency's breaker opened", ("dependency",), scraped=True
    ),
    "inbox_depth": Family("gauge", "Deliveries waiting in the inbox", scraped=True),
    "inbox_oldest_age_seconds": Family(
        "gauge", "Age of the oldest delivery waiting in the inbox", scraped=True
    ),
    "inbox_dead_letters": Family(
        "gauge", "Dead letters kept (replayable with pulse dead-letters)", scraped=True
    ),
    "last_event_timestamp_seconds": Family(
        "gauge",
        "Unix time of the last webhook request stored, by source",
        ("source",),
        scraped=True,
    ),
    "incidents_open": Family(
        "gauge", "Incidents open now across replicas, by signature", ("signature",), scraped=True
    ),
    "dead_letters_purged_total": Family(
        "counter", "Dead letters deleted past DEAD_LETTER_RETENTION_DAYS"
    ),
    # the control plane
    "webhook_gap_events_total": Family(
        "counter", "Events a reconcile counted that no webhook had delivered", ("source",)
    ),
    "reconcile_last_run_events": Family(
        "gauge",
        "The last reconcile's objects by count (found, new, already, gated, ignored)",
        ("source", "count"),
        scraped=True,
    ),
    "job_runs_total": Family(
        "counter",
        "Scheduled control-plane job runs, by job and outcome (ok, failed)",
        ("job", "outcome"),
    ),
    "job_last_run_timestamp_seconds": Family(
        "gauge",
        "When each job last ran, by outcome (ok, failed)",
        ("job", "outcome"),
        scraped=True,
    ),
}

Reading = tuple[str, dict[str, str], float]
GaugeSource = Callable[[], Iterable[Reading]]


def exposed_name(name: str) -> str:
    return PREFIX + name


def series_names() -> set[str]:
    """Every sample name the page can hold (histograms: their `_bucket`, `_sum`, `_count`)."""
    names: set[str] = set()
    for name, family in FAMILIES.items():
        full = exposed_name(name)
        if family.kind == "histogram":
            names.update(f"{full}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(full)
    return names


class Metrics:
    """One registry per process (per container: tests build many side by side)."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` samples double the page and no panel reads them
        self.registry = CollectorRegistry(auto_describe=True)
        self._recorded: dict[str, Counter | Histogram] = {}
        # Labelled children by (family, labels): prometheus_client's labels() validates and
        # locks on every call, several times per request on the edge.
        self._children: dict[tuple[object, ...], Any] = {}
        self._sources: list[GaugeSource] = []
        for name, family in FAMILIES.items():
            if family.scraped:
                continue
            full, labels = exposed_name(name), family.labels
            if family.kind == "counter":
                self._recorded[name] = Counter(full, family.help, labels, registry=self.registry)
            elif family.kind == "histogram":
                self._recorded[name] = Histogram(
                    full, family.help, labels, registry=self.registry, buckets=LATENCY_BUCKETS
                )
        self.registry.register(_Scraped(self._sources))

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._child(name, Counter, labels).inc(amount)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        self._child(name, Histogram, labels).observe(seconds)

    def _child(self, name: str, kind: type, labels: dict[str, str]) -> Any:
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            metric = self._recorded[name]
            assert isinstance(metric, kind), f"{name} is not a {kind.__name__.lower()}"
            child = metric.labels(**labels) if labels else metric
            self._children[key] = child
        return child

    def value(self, name: str, **labels: str) -> float:
        """A sample's value as the page shows it (a histogram's: name it `…_count`/`…_sum`)."""
        found = self.registry.get_sample_value(exposed_name(name), labels)
        return found if found is not None else 0.0

    def gauge_source(self, fn: GaugeSource) -> None:
        """Register a function read at scrape time: yields (name, labels, value), each name a
        `scraped` family."""
        self._sources.append(fn)

    def render(self, elsewhere: Sequence[str] = ()) -> str:
        """The page; with `elsewhere` (the pages of this daemon's other edge processes), their
        counters and histograms added in, so the page counts the whole daemon."""
        if not elsewhere:
            return generate_latest(self.registry).decode()
        merged = CollectorRegistry(auto_describe=False)
        merged.register(_Summed(self.registry, summed_samples(elsewhere)))
        return generate_latest(merged).decode()


SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def summed_samples(pages: Sequence[str]) -> dict[str, dict[SampleKey, float]]:
    """Per family, the sum over `pages` (`/metrics` texts) of each counter and histogram
    sample, keyed by sample name and sorted labels."""
    sums: dict[str, dict[SampleKey, float]] = {}
    for page in pages:
        for family in text_string_to_metric_families(page):
            if family.type not in ("counter", "histogram"):
                continue  # a gauge is a state of the process that holds it: not summed
            samples = sums.setdefault(family.name, {})
            for sample in family.samples:
                key = _sample_key(sample)
                samples[key] = samples.get(key, 0.0) + sample.value
    return sums


def _sample_key(sample: Sample) -> SampleKey:
    return sample.name, tuple(sorted(sample.labels.items()))


class _Summed(Collector):
    """`registry`'s families with `more` added to their counter and histogram samples."""

    def __init__(self, registry: CollectorRegistry, more: dict[str, dict[SampleKey, float]]):
        self.registry = registry
        self.more = more

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            extra = dict(self.more.get(family.name, {}))
            if extra:
                samples = []
                for sample in family.samples:
                    more = extra.pop(_sample_key(sample), 0.0)
                    samples.append(sample._replace(value=sample.value + more))
                samples += [Sample(name, dict(labels), v) for (name, labels), v in extra.items()]
                family.samples = samples
            yield family


class _Scraped(Collector):
    """The `scraped` families, filled from every gauge source at each scrape."""

    def __init__(self, sources: list[GaugeSource]) -> None:
        self._sources = sources

    def describe(self) -> Iterator[Metric]:
        return iter(())  # not known before a scrape: the registry must not call collect early

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for name, family in FAMILIES.items():
            if not family.scraped:
                continue
            full = exposed_name(name)
            if family.kind == "counter":
                families[name] = CounterMetricFamily(full, family.help, labels=family.labels)
            else:
                families[name] = GaugeMetricFamily(full, family.help, labels=family.labels)
        for source in self._sources:
            for name, labels, value in source():
                spec = FAMILIES[name]
                assert spec.scraped, f"{name} is recorded, not scraped"
                families[name].add_metric([labels[k] for k in spec.labels], value)
        return iter(families.values())

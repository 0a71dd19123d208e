"""`/metrics` with EDGE_PROCESSES > 1: the first process's page with the others' counters and
histograms added in (a gauge stays the first process's own)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pulse.adapters_in.metrics import Metrics


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


def test_counters_and_histograms_are_summed_across_pages() -> None:
    first, second, third = Metrics(), Metrics(), Metrics()
    first.inc("webhooks_received_total", source="aloware")
    first.observe("http_request_duration_seconds", 0.003, route="/webhooks/{source}")
    second.inc("webhooks_received_total", 2, source="aloware")
    second.inc("webhooks_received_total", 5, source="hubspot")  # a label set only it has
    second.observe("http_request_duration_seconds", 0.5, route="/webhooks/{source}")
    third.observe("http_request_duration_seconds", 0.004, route="/webhooks/{source}")
    first.gauge_source(lambda: [("inbox_depth", {}, 7.0)])
    second.gauge_source(lambda: [("inbox_depth", {}, 100.0)])

    merged = samples(first.render([second.render(), third.render()]))

    route = (("route", "/webhooks/{source}"),)
    assert merged[("pulse_webhooks_received_total", (("source", "aloware"),))] == 3
    assert merged[("pulse_webhooks_received_total", (("source", "hubspot"),))] == 5
    assert merged[("pulse_http_request_duration_seconds_count", route)] == 3
    assert merged[("pulse_http_request_duration_seconds_sum", route)] == 0.507
    bucket = "pulse_http_request_duration_seconds_bucket"
    assert merged[(bucket, (("le", "0.005"), *route))] == 2
    assert merged[(bucket, (("le", "1.0"), *route))] == 3
    assert merged[("pulse_inbox_depth", ())] == 7  # not 107: a gauge is one process's state


def test_without_other_pages_the_page_is_the_registry_s() -> None:
    metrics = Metrics()
    metrics.inc("webhooks_received_total", source="aloware")
    assert metrics.render([]) == metrics.render()

"""`GET /metrics` is a valid Prometheus page: HELP and TYPE on every family, names by the
Prometheus naming rules, label values escaped; `promtool check metrics` agrees."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse.adapters_in.metrics import FAMILIES, Metrics, series_names

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
HOSTILE = 'a "quoted" \\ back\nslash'  # what an error text in a label would look like


def every_series_page() -> str:
    """A page where every declared family has a sample, label values hostile."""
    metrics = Metrics()

    def scraped() -> list[tuple[str, dict[str, str], float]]:
        return [
            (name, dict.fromkeys(family.labels, HOSTILE), 1.0)
            for name, family in FAMILIES.items()
            if family.scraped
        ]

    metrics.gauge_source(scraped)
    for name, family in FAMILIES.items():
        labels = dict.fromkeys(family.labels, HOSTILE)
        if family.scraped:
            continue
        if family.kind == "counter":
            metrics.inc(name, **labels)
        else:
            metrics.observe(name, 0.3, **labels)
    return metrics.render()


def naming_problems(page: str) -> list[str]:
    """The rules `promtool check metrics` applies, plus ours: every name is `pulse_…`."""
    problems = []
    for family in text_string_to_metric_families(page):
        name = family.name
        if not family.documentation:
            problems.append(f"{name}: no HELP")
        if family.type == "unknown":
            problems.append(f"{name}: no TYPE")
        if not NAME.match(name) or not name.startswith("pulse_"):
            problems.append(f"{name}: not a pulse_ metric name")
        if family.type == "counter" and not all(s.name.endswith("_total") for s in family.samples):
            problems.append(f"{name}: a counter's samples end in _total")
        if family.type != "counter" and name.endswith("_total"):
            problems.append(f"{name}: only counters end in _total")
        if family.type == "histogram" and not name.endswith("_seconds"):
            problems.append(f"{name}: durations are in seconds, named _seconds")
        for sample in family.samples:
            problems += [f"{name}: label {k}" for k in sample.labels if not LABEL.match(k)]
    return problems


def test_every_declared_family_renders_with_help_type_and_prometheus_names() -> None:
    page = every_series_page()

    families = {f.name for f in text_string_to_metric_families(page)}

    assert naming_problems(page) == []
    assert len(families) == len(FAMILIES)
    assert page.count("# HELP ") == page.count("# TYPE ") == len(FAMILIES)


def test_the_naming_check_catches_a_family_without_help_or_a_misnamed_counter() -> None:
    page = "# TYPE pulse_things counter\npulse_things 1\n# TYPE pulse_waiting_total gauge\n"
    page += "pulse_waiting_total 2\n"

    problems = naming_problems(page)

    assert "pulse_things: no HELP" in problems
    assert "pulse_waiting_total: only counters end in _total" in problems


def test_label_values_are_escaped_so_the_page_still_parses() -> None:
    page = every_series_page()

    reasons = [
        s.labels["reason"]
        for f in text_string_to_metric_families(page)
        for s in f.samples
        if f.name == "pulse_events"
    ]

    assert reasons == [HOSTILE]


def test_a_series_not_declared_cannot_be_recorded() -> None:
    metrics = Metrics()
    with pytest.raises(KeyError):
        metrics.inc("events_by_whim_total")
    with pytest.raises(ValueError):
        metrics.inc("events_total", source="aloware")  # outcome and reason missing


def test_every_sample_on_the_page_is_a_name_series_names_knows() -> None:
    page = every_series_page()

    samples = {s.name for f in text_string_to_metric_families(page) for s in f.samples}

    assert samples == series_names()


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make lint` installs it (Debian's prometheus package)"
    return found


def promtool_check_metrics(page: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"], input=page, capture_output=True, text=True, timeout=30
    )


def test_promtool_check_metrics_passes_the_page_with_every_series() -> None:
    result = promtool_check_metrics(every_series_page())

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_promtool_check_metrics_fails_a_page_without_help() -> None:
    result = promtool_check_metrics("# TYPE pulse_things_total counter\npulse_things_total 1\n")

    assert result.returncode != 0
    assert "no help text" in result.stdout + result.stderr

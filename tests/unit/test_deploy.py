"""What operators plug in: the Grafana dashboard and the Prometheus alert rules read only
series `/metrics` exposes, and promtool accepts every expression."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulse.adapters_in.instrumented import sink_readings
from pulse.adapters_in.metrics import FAMILIES, exposed_name, series_names
from tests.unit.test_metrics_exposition import promtool

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "pulse.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SERIES = re.compile(r"\bpulse_[a-z0-9_]+")
# Series another change adds; each leaves this list when it lands.
PENDING: dict[str, str] = {}
REQUIRED_ALERTS = {
    "PulseInboxBacklog",
    "PulseDeadLetters",
    "PulseBreakerOpen",
    "PulseSourceSilent",
    "PulseReconcileGap",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def unknown_series(exprs: list[str]) -> set[str]:
    named = {m for expr in exprs for m in SERIES.findall(expr)}
    return named - series_names() - PENDING.keys()


def test_the_dashboard_is_a_grafana_dashboard_with_unique_placed_panels() -> None:
    board = dashboard()
    panels = board["panels"]

    assert (board["uid"], board["title"]) == ("pulse-daemon", "Pulse")
    assert isinstance(board["schemaVersion"], int)
    assert len({p["id"] for p in panels}) == len(panels)
    assert all({"h", "w", "x", "y"} <= p["gridPos"].keys() for p in panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_every_dashboard_query_reads_only_exposed_series() -> None:
    assert unknown_series(panel_exprs()) == set()


def test_every_family_on_the_page_has_a_panel() -> None:
    read = {m for expr in panel_exprs() for m in SERIES.findall(expr)}
    unread = {
        exposed_name(name)
        for name in FAMILIES
        if not any(series.startswith(exposed_name(name)) for series in read)
    }
    assert unread == set()


def test_the_series_check_catches_a_query_of_a_series_nobody_exposes() -> None:
    assert unknown_series(["rate(pulse_events_total[5m]) / pulse_evnts_total"]) == {
        "pulse_evnts_total"
    }


def test_every_dashboard_query_is_promql_promtool_accepts(tmp_path: Path) -> None:
    """As recording rules, the dashboard's queries go through promtool's PromQL parser."""
    rules = [
        {"record": f"pulse_dashboard:query_{i}", "expr": e} for i, e in enumerate(panel_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_query_that_is_not_promql(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    bad = {"record": "pulse_dashboard:bad", "expr": "sum by (source (pulse_events_total)"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [bad]}]}))

    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )

    assert result.returncode != 0


def test_the_alert_rules_name_what_an_operator_must_hear_about() -> None:
    rules = alert_rules()

    assert REQUIRED_ALERTS <= {r["alert"] for r in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_every_alert_reads_only_exposed_series() -> None:
    assert unknown_series([r["expr"] for r in alert_rules()]) == set()


@pytest.mark.parametrize("args", [["check", "rules"], ["test", "rules"]])
def test_promtool_accepts_the_rules_and_their_unit_tests(args: list[str]) -> None:
    target = ALERTS if args[0] == "check" else ALERTS.with_name("alerts_test.yml")

    result = subprocess.run(
        [promtool(), *args, str(target)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


class PowerBILike:
    def stats(self) -> dict[str, Any]:
        return {
            "requests": 9,
            "throttled_429": 2,
            "unavailable": 1,
            "queued_rows": 40,
            "in_flight": 3,
            "breaker_open": False,
        }


def test_a_push_sinks_snapshot_becomes_its_series_and_power_bi_retries_are_429s_and_5xx() -> None:
    readings = {name: value for name, _, value in sink_readings("powerbi", PowerBILike())()}

    assert readings == {
        "sink_requests_total": 9,
        "sink_throttled_total": 2,
        "sink_retries_total": 3,
        "sink_queued_rows": 40,
        "sink_requests_in_flight": 3,
    }
    assert sink_readings("local", object())() == []

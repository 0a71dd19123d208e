"""The nightly HubSpot reconcile as a scheduled job: the webhook gap it finds, logged and on /metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.scheduler import Job
from pulse.core.control import Caller, Summary
from pulse.core.ingest import IngestConfig
from pulse.core.reconcile import ReconcilePorts, Window, reconcile_hubspot

log = logging.getLogger("pulse.reconcile")

JOB = "reconcile_hubspot"


def reconcile_job(
    cron: str, days: int, ports: ReconcilePorts, config: IngestConfig, metrics: Metrics
) -> Job:
    """Every night: what HubSpot's CRM lists as created in the last `days`, through the ingest
    path. What it finds new is what the webhooks missed (HubSpot gave up after 24 h, the app
    was misconfigured, Pulse was down): `pulse_webhook_gap_events_total{source="hubspot"}`,
    and the last run's counts as `pulse_reconcile_last_run_events{count=…}`."""
    last: dict[str, int] = {}

    def gauges() -> Iterable[tuple[str, dict[str, str], float]]:
        for name, value in last.items():
            yield "reconcile_last_run_events", {"source": "hubspot", "count": name}, value

    metrics.gauge_source(gauges)

    async def run(caller: Caller) -> Summary:
        window = Window.last_days(ports.clock.now(), days)
        summary = await reconcile_hubspot(window, ports, config, caller, action=JOB)
        last.clear()
        last.update(summary.counts)
        gap = summary.counts.get("new", 0)
        metrics.inc(
            "webhook_gap_events_total",
            gap,
            source="hubspot",
        )
        level = logging.WARNING if gap else logging.INFO
        log.log(
            level,
            "webhook gap: %d hubspot event(s) found by the reconcile of %s",
            gap,
            window.describe(),
            extra={"fields": {"source": "hubspot", "gap": gap, **summary.counts}},
        )
        return summary

    return Job(JOB, cron, run)

"""Webhooks in through the real app, out as star-schema rows: SQLite inbox, ledger and warehouse,
static roster and CRM, inbox workers running."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.base import WebhookSource
from pulse.adapters_in.worker import InboxWorkers
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from pulse.adapters_out.sqlite.ledger import SqliteLedger
from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.adapters_out.static.crm import StaticCrmDirectory
from pulse.adapters_out.static.roster import StaticRoster
from pulse.core.ingest import IngestConfig, IngestPorts
from pulse.core.model import Goal, MetricID
from tests.fakes import FakeClock
from tests.integration.conftest import (
    WEBHOOK_SAMPLES,
    AiohttpClient,
    Edge,
    eventually,
    sample,
    start_edge,
)

CALL_KEY = "aloware:54363660"
GOALS = {
    MetricID.CALLS: Goal(MetricID.CALLS, 60, 0.8),
    MetricID.TEXTS: Goal(MetricID.TEXTS, 40, 0.8),
    MetricID.EMAILS: Goal(MetricID.EMAILS, 20, 0.8),
    MetricID.CASES: Goal(MetricID.CASES, 5, 0.8),
}
ROSTER = [
    {"id": 42, "name": "Ada Agent", "email": "ada@example.test"},
    {"id": 7, "name": "John Smith", "email": "JSmith@Example.test"},  # HubSpot owner 6166860
]
CRM = {
    "emails": {
        "88120045123": {
            "owner_id": "6166860",
            "owner_email": "jsmith@example.test",
            "direction": "EMAIL",
            "status": "SENT",
            "created_at": "2025-11-05T17:16:50.977Z",
        }
    },
    "tickets": {
        "9001122471": {
            "owner_id": "6166860",
            "owner_email": "jsmith@example.test",
            "created_at": "2025-11-05T17:02:22.417Z",
        }
    },
}


@dataclass
class Pipeline:
    edge: Edge
    warehouse: SqliteWarehouse
    inbox: SqliteInbox

    async def drained(self) -> None:
        async def empty() -> bool:
            return (await self.inbox.stats()).depth == 0

        assert await eventually(empty, within=5.0), await self.inbox.stats()
        assert (await self.inbox.stats()).dead_letters == 0

    async def facts(self) -> list[tuple[str, str]]:
        return sorted(
            (r["MetricID"], r["EventKey"]) for r in await self.warehouse.rows("FactEvent")
        )


@pytest.fixture
async def stores(
    tmp_path: Path,
) -> AsyncIterator[tuple[SqliteInbox, SqliteLedger, SqliteWarehouse]]:
    clock = SystemClock()
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, timedelta(seconds=60))
    ledger = SqliteLedger(tmp_path / "ledger.sqlite", clock)
    warehouse = SqliteWarehouse(tmp_path / "warehouse.sqlite")
    yield inbox, ledger, warehouse
    await inbox.close()
    await ledger.close()
    await warehouse.close()


@pytest.fixture
async def pipeline(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    webhook_sources: dict[str, WebhookSource],
    edge_clock: FakeClock,
    aloware_token: str,
    stores: tuple[SqliteInbox, SqliteLedger, SqliteWarehouse],
) -> AsyncIterator[Pipeline]:
    inbox, ledger, warehouse = stores
    (tmp_path / "roster.json").write_text(json.dumps(ROSTER))
    (tmp_path / "crm.json").write_text(json.dumps(CRM))
    ports = IngestPorts(
        parsers=webhook_sources,
        inbox=inbox,
        dead_letters=SqliteDeadLetters(inbox),
        ledger=ledger,
        sink=warehouse,
        roster=StaticRoster(file=tmp_path / "roster.json", ring_group_id="29109"),
        crm=StaticCrmDirectory(tmp_path / "crm.json"),
    )
    # A short backoff: two workers may meet on one key, and the loser's retry should be quick.
    config = IngestConfig(
        zone=ZoneInfo("America/New_York"), goals=GOALS, retry_base=timedelta(milliseconds=50)
    )
    workers = InboxWorkers(ports, config, SystemClock(), Metrics(), count=2, take_wait=0.05)
    edge = await start_edge(aiohttp_client, webhook_sources, inbox, edge_clock, aloware_token)
    workers.start()
    yield Pipeline(edge, warehouse, inbox)
    await workers.drain(budget_sec=2.0)


def aloware_delivery(event: str, **fields: Any) -> bytes:
    """The captured disposed call re-sent under another event name, as Aloware fans it out."""
    captured = copy.deepcopy(sample("aloware-call-disposed")["body"])
    captured["event"] = event
    captured["body"].update(fields)
    return json.dumps(captured).encode()


def six_deliveries_of_the_captured_call() -> list[bytes]:
    in_flight = {"disposition_status": None, "disposition_status2": "1", "duration": "0"}
    return [
        aloware_delivery("OutboundPhoneCall", **in_flight),
        aloware_delivery("OutboundPhoneCall-Answered", **{**in_flight, "current_status2": "2"}),
        aloware_delivery("OutboundPhoneCall-DispositionCompleted"),
        aloware_delivery("Communication-Disposed"),
        aloware_delivery(
            "OutboundPhoneCall-DispositionCompleted", updated_at="2025-11-05 17:23:40"
        ),
        aloware_delivery("OutboundPhoneCall-DispositionCompleted", attempt="2"),
    ]


async def post_aloware(pipeline: Pipeline, body: bytes) -> None:
    response = await pipeline.edge.client.post(
        "/webhooks/aloware", data=body, headers=pipeline.edge.aloware_headers()
    )
    assert response.status == 202, await response.text()


async def test_every_sample_in_yields_exactly_one_fact_per_expected_activity(
    pipeline: Pipeline,
) -> None:
    for name in WEBHOOK_SAMPLES:
        response = await pipeline.edge.post_sample(name)
        assert response.status == 202, (name, await response.text())

    await pipeline.drained()

    assert await pipeline.facts() == [
        ("CALLS", CALL_KEY),
        ("CASES", "hubspot:ticket:9001122471"),
        ("EMAILS", "hubspot:email:88120045123"),
        ("TEXTS", "aloware:1771234501"),
    ]


async def test_the_facts_match_what_the_samples_say_they_are(pipeline: Pipeline) -> None:
    for name in WEBHOOK_SAMPLES:
        await pipeline.edge.post_sample(name)
    await pipeline.drained()

    facts = {r["EventKey"]: r for r in await pipeline.warehouse.rows("FactEvent")}
    for name in WEBHOOK_SAMPLES:
        expected = sample(name)["_meta"]["expected_fact"]
        if not isinstance(expected, dict):
            continue
        fact = facts[expected["event_id"]]
        assert fact["MetricID"] == expected["metric"], name
        assert fact["AgentKey"] == expected.get("agent_id", "7"), name
        assert fact["DateKey"] == 20251105
    assert facts[CALL_KEY]["OccurredAtUtc"] == "2025-11-05T17:22:28+00:00"
    assert facts[CALL_KEY]["OccurredAtLocal"] == "2025-11-05T12:22:28"
    assert facts[CALL_KEY]["DurationSec"] == 44


async def test_six_deliveries_of_one_aloware_call_yield_one_calls_fact(pipeline: Pipeline) -> None:
    for body in six_deliveries_of_the_captured_call():
        await post_aloware(pipeline, body)

    await pipeline.drained()

    assert await pipeline.facts() == [("CALLS", CALL_KEY)]


async def test_a_hubspot_batch_with_a_repeated_ticket_yields_one_cases_fact(
    pipeline: Pipeline,
) -> None:
    (event,) = json.loads(sample("hubspot-v3-ticket-creation")["raw_body"])
    retried = {**event, "attemptNumber": 1}  # HubSpot's eventId is not unique: same id again
    generic = {**event, "eventId": 99, "subscriptionType": "object.creation", "objectTypeId": "0-5"}

    for _ in range(2):  # and the whole batch delivered twice
        response = await pipeline.edge.post_hubspot([event, retried, generic])
        assert response.status == 202, await response.text()
    await pipeline.drained()

    assert await pipeline.facts() == [("CASES", "hubspot:ticket:9001122471")]


async def test_fact_daily_metric_shows_the_days_counts_per_agent(pipeline: Pipeline) -> None:
    for name in WEBHOOK_SAMPLES:
        await pipeline.edge.post_sample(name)
    for body in six_deliveries_of_the_captured_call():
        await post_aloware(pipeline, body)
    await pipeline.drained()

    rows = await pipeline.warehouse.daily_metrics(20251105)

    counts = {(r["AgentKey"], r["MetricID"]): r["Count"] for r in rows}
    assert counts == {
        ("42", "CALLS"): 1,
        ("42", "TEXTS"): 1,
        ("42", "EMAILS"): 0,
        ("42", "CASES"): 0,
        ("7", "CALLS"): 0,
        ("7", "TEXTS"): 0,
        ("7", "EMAILS"): 1,
        ("7", "CASES"): 1,
    }
    calls = next(r for r in rows if (r["AgentKey"], r["MetricID"]) == ("42", "CALLS"))
    assert (calls["AgentName"], calls["Goal"], calls["Status"]) == ("Ada Agent", 60, "Red")
    assert calls["Attainment"] == pytest.approx(1 / 60)
    cases = next(r for r in rows if (r["AgentKey"], r["MetricID"]) == ("7", "CASES"))
    assert (cases["AgentName"], cases["Goal"], cases["Attainment"]) == ("John Smith", 5, 0.2)

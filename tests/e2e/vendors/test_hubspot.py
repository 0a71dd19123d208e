"""HubSpot end to end through the real daemon: signed v3 webhooks over HTTP → SQLite inbox →
worker → CRM lookups on the HubSpot emulator (CRM=hubspot) against the Aloware roster
(ROSTER=aloware, emulated) → CASES / EMAILS facts in DATA_DIR/warehouse.sqlite.

The daemon is what `pulse serve` runs (container + `Daemon.run`) built from settings only; the
test watches it from outside (HTTP answers, `/metrics`, the SQLite files), plus one read-only
spy on the workers' batch outcomes to see why an event was not counted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pulse.adapters_in.worker import InboxWorkers
from pulse.bootstrap.container import Container
from pulse.bootstrap.settings import Settings
from pulse.core.ingest import BatchOutcome
from pulse.core.model import Delivery
from tests.emulators.aloware import AlowareEmulator
from tests.emulators.hubspot import HubSpotEmulator

pytestmark = pytest.mark.slow

SPECS = Path(__file__).resolve().parents[2] / "specs" / "webhooks"
PUBLIC_BASE_URL = "https://pulse.example.test"
SMITH_OWNER = "6166860"  # owner of the sample email and ticket: jsmith@example.test
START_TIMEOUT_SEC = 20.0
SETTLE_TIMEOUT_SEC = 20.0


def hubspot_v3(secret: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature, written out here so the test does not trust the code under test."""
    message = b"POST" + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sample_body(name: str) -> bytes:
    return str(json.loads((SPECS / f"{name}.json").read_text())["raw_body"]).encode()


def event(subscription: str, event_id: int, object_id: int, type_id: str | None = None) -> Any:
    item: dict[str, Any] = {
        "eventId": event_id,
        "subscriptionId": 2764063,
        "portalId": 21508821,
        "appId": 3715530,
        "occurredAt": 1762362142417 + event_id,  # 2025-11-05 17:02 UTC
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeFlag": "CREATED",
        "changeSource": "CRM_UI",
    }
    if type_id:
        item["objectTypeId"] = type_id
    return item


class Sender:
    """HubSpot's side: POST an event array to /webhooks/hubspot, signed (or not) with v3."""

    def __init__(self, http: aiohttp.ClientSession, url: str, secret: str) -> None:
        self.http, self.url, self.secret = http, url, secret

    async def post(self, body: bytes, *, signed_body: bytes | None = None) -> int:
        timestamp = str(int(time.time() * 1000))
        uri = PUBLIC_BASE_URL + "/webhooks/hubspot"
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": hubspot_v3(
                self.secret, uri, body if signed_body is None else signed_body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        async with self.http.post(self.url + "/webhooks/hubspot", data=body, headers=headers) as r:
            await r.read()
            return r.status


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """The daemon on a free port, as `pulse serve` builds it; on exit, SIGTERM's drain path."""
    container = Container(settings=settings)
    daemon = await container.daemon()
    task = asyncio.create_task(daemon.run("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while not daemon.started.is_set():  # listening, and every start step done
            if task.done():
                task.result()
                raise AssertionError("the daemon returned before it started")
            assert time.monotonic() < deadline, "the daemon did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{daemon.port}"
        daemon.stop_requested.set()
        assert await asyncio.wait_for(task, settings.drain_timeout_sec + 20) == 0
    finally:
        if not task.done():
            daemon.stop_requested.set()
            await asyncio.wait_for(task, settings.drain_timeout_sec + 20)
        closing = container.shutdown_resources()
        if closing is not None:
            await closing


def counters(text: str, name: str) -> dict[str, float]:
    """`pulse_<name>{labels} value` lines of a /metrics page, by their label text."""
    pattern = re.compile(rf"^pulse_{name}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def select(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, timeout=5)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> list[BatchOutcome]:
    """What each worker batch decided (status and reason per event), seen without changing it."""
    seen: list[BatchOutcome] = []
    original = InboxWorkers.run_batch

    async def run_batch(
        self: InboxWorkers, deliveries: list[Delivery], *more: Any
    ) -> BatchOutcome | None:
        outcome = await original(self, deliveries, *more)
        if outcome is not None:
            seen.append(outcome)
        return outcome

    monkeypatch.setattr(InboxWorkers, "run_batch", run_batch)
    return seen


async def test_signed_hubspot_webhooks_become_cases_and_emails_for_roster_agents(
    tmp_path: Path, outcomes: list[BatchOutcome]
) -> None:
    secret = secrets.token_urlsafe(24)
    async with AlowareEmulator() as aloware, HubSpotEmulator() as hubspot:
        # The sample owner's email, cased differently on the roster: matched lower-cased.
        aloware.ring_groups["8465"].append(
            {"id": 7, "name": "John Smith", "email": "JSmith@Example.test"}
        )
        hubspot.add_email("501", owner_id=SMITH_OWNER, direction="INCOMING_EMAIL")
        hubspot.add_owner("111", "stranger@example.test")
        hubspot.add_ticket("601", owner_id="111")  # an owner no roster agent matches
        hubspot.add_ticket("602", owner_id="999")  # an owner HubSpot does not know (404)
        hubspot.add_ticket("603", owner_id=SMITH_OWNER)  # only ever sent with a bad signature
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path,
            sink="local",
            inbox="sqlite",
            ledger="sqlite",
            roster="aloware",
            aloware_base_url=aloware.base_url,
            aloware_api_token=aloware.token,
            ring_group_id="8465",
            crm="hubspot",
            hubspot_base_url=hubspot.base_url,
            hubspot_access_token=hubspot.token,
            hubspot_auth="v3",
            hubspot_client_secret=secret,
            public_base_url=PUBLIC_BASE_URL,
            aloware_auth="none",
            business_timezone="America/New_York",
            admin_hmac_secret=None,
            otel_exporter_otlp_endpoint=None,
            shifts=[],
        )
        async with serve(settings) as url, aiohttp.ClientSession() as http:
            sender = Sender(http, url, secret)
            ticket = sample_body("hubspot-v3-ticket-creation")
            statuses = [
                await sender.post(ticket),
                await sender.post(sample_body("hubspot-v3-email-object-creation")),
                await sender.post(json.dumps([event("object.creation", 1, 501, "0-49")]).encode()),
                await sender.post(
                    json.dumps(
                        [event("ticket.creation", 2, 601), event("ticket.creation", 3, 602)]
                    ).encode()
                ),
                await sender.post(ticket),  # HubSpot retries: the same ticket again
            ]
            forged = json.dumps([event("ticket.creation", 4, 603)]).encode()
            refused = await sender.post(forged, signed_body=forged + b" ")

            events: dict[str, float] = {}
            deadline = time.monotonic() + SETTLE_TIMEOUT_SEC
            while sum(events.values()) < 6:  # 2 counted, 1 inbound, 2 gated, 1 repeat
                assert time.monotonic() < deadline, f"events settled so far: {events}"
                await asyncio.sleep(0.1)
                async with http.get(url + "/metrics") as response:
                    page = await response.text()
                events = counters(page, "events_total")

    assert statuses == [202] * 5
    assert refused == 401
    by_outcome: dict[str, float] = {}
    for labels, value in events.items():  # source="hubspot",outcome="…",reason="…"
        outcome = re.search(r'outcome="([^"]+)"', labels)
        assert outcome is not None and 'reason=""' not in labels, labels
        by_outcome[outcome.group(1)] = by_outcome.get(outcome.group(1), 0) + value
    assert by_outcome == {"accepted": 2, "ignored": 1, "gated": 2, "duplicate": 1}
    assert all('source="hubspot"' in labels for labels in events)
    assert counters(page, "webhooks_received_total") == {'source="hubspot"': 5}
    assert sum(counters(page, "webhooks_rejected_total").values()) == 1

    facts = select(
        tmp_path / "warehouse.sqlite",
        "SELECT EventKey, MetricID, AgentKey, DateKey, OccurredAtLocal FROM FactEvent",
    )
    assert sorted(facts) == [
        ("hubspot:email:88120045123", "EMAILS", "7", 20251105, "2025-11-05T12:16:50.977000"),
        ("hubspot:ticket:9001122471", "CASES", "7", 20251105, "2025-11-05T12:02:22.417000"),
    ]
    why = {
        e.key: (e.status.value, e.reason)
        for outcome in outcomes
        for envelope in outcome.envelopes
        for e in envelope.events
        if e.status.value in ("ignored", "gated")
    }
    assert why == {
        "hubspot:email:501": ("ignored", "not_outbound"),
        "hubspot:ticket:601": ("gated", "unknown_owner"),
        "hubspot:ticket:602": ("gated", "unknown_owner"),
    }
    # The owners came from the CRM emulator, over HTTP, with the private-app token.
    assert hubspot.hits["/crm/v3/objects/tickets/9001122471"] >= 1
    assert hubspot.hits["/crm/v3/owners/999"] >= 1
    assert hubspot.hits["/crm/v3/objects/tickets/603"] == 0  # the forged one never got in
    assert select(tmp_path / "inbox.sqlite", "SELECT COUNT(*) FROM inbox") == [(0,)]
    assert select(tmp_path / "inbox.sqlite", "SELECT COUNT(*) FROM dead_letters") == [(0,)]

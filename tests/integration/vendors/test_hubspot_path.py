"""HubSpot end to end: signed webhooks → CRM emulator lookups → CASES / EMAILS facts for roster agents."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from pulse.adapters_in.sources.base import WebhookRequest
from pulse.adapters_in.sources.hubspot import HubSpotSource, signature_v3
from pulse.adapters_out.aloware.roster import AlowareRoster
from pulse.adapters_out.hubspot.crm import HubSpotCrm
from pulse.core.ingest import IngestConfig, IngestPorts, process_batch
from pulse.core.model import Delivery, DimRow, FactEvent, IngestEnvelope, MetricID
from tests.emulators.aloware import AlowareEmulator
from tests.emulators.hubspot import HubSpotEmulator
from tests.fakes import FakeClock, FakeLedger

URL = "https://pulse.example.test/webhooks/hubspot"
NOW = datetime(2025, 11, 5, 17, 30, tzinfo=UTC)


class Facts:
    def __init__(self) -> None:
        self.facts: list[FactEvent] = []

    async def append(self, facts: Sequence[FactEvent]) -> None:
        self.facts.extend(facts)

    async def upsert(self, rows: Sequence[DimRow]) -> None: ...

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None: ...


class Inbox:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def ack(self, receipts: Sequence[str]) -> None:
        self.acked.extend(receipts)

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        raise AssertionError(f"nothing should be retried: {receipts}")


class Overrides:
    def __init__(self) -> None:
        self.by_owner: dict[str, str] = {}

    async def get(self, owner: str) -> str | None:
        return self.by_owner.get(owner)


def webhook(source: HubSpotSource, secret: str, events: list[dict[str, object]]) -> Delivery:
    """A delivery the way the edge would store it, after the signature check passed."""
    body = json.dumps(events).encode()
    timestamp = str(int(NOW.timestamp() * 1000))
    headers = {
        "content-type": "application/json",
        "x-hubspot-request-timestamp": timestamp,
        "x-hubspot-signature-v3": signature_v3(secret, "POST", URL, body, timestamp),
    }
    request = WebhookRequest("POST", URL, headers, body, int(NOW.timestamp() * 1000) + 1000)
    source.authenticate(request)
    source.check(request)
    envelope = IngestEnvelope(secrets.token_hex(4), "hubspot", NOW, body, headers)
    return Delivery(envelope, receipt=envelope.request_id)


def event(subscription: str, object_id: int, type_id: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {
        "eventId": object_id,
        "occurredAt": int(NOW.timestamp() * 1000),
        "subscriptionType": subscription,
        "objectId": object_id,
    }
    if type_id:
        item["objectTypeId"] = type_id
    return item


async def test_hubspot_tickets_and_outbound_emails_count_for_roster_agents_only() -> None:
    secret = secrets.token_urlsafe(24)
    source = HubSpotSource(client_secret=secret)
    async with (
        AlowareEmulator() as aloware,
        HubSpotEmulator() as hubspot,
        httpx.AsyncClient() as http,
    ):
        aloware.ring_groups["8465"].append(
            {"id": 7, "name": "John Smith", "email": "JSmith@Example.test"}
        )
        aloware.ring_groups["8465"].append({"id": 8, "name": "Olga", "email": "olga@example.test"})
        hubspot.add_email("501", owner_id="6166860", direction="INCOMING_EMAIL")
        hubspot.add_email("502", owner_id="6166860", status="BOUNCED")
        hubspot.add_owner("111", "stranger@example.test")
        hubspot.add_ticket("601", owner_id="111")  # an owner nobody on the roster matches
        hubspot.add_ticket("602", owner_id="999")  # an owner HubSpot does not know
        hubspot.add_owner("222", "olga.alias@example.test")
        hubspot.add_ticket("603", owner_id="222")  # mapped by the admin override below
        clock = FakeClock(NOW)
        roster = AlowareRoster(http, aloware.base_url, aloware.token, "8465", clock)
        overrides = Overrides()
        overrides.by_owner["222"] = "8"
        crm = HubSpotCrm(
            http, hubspot.base_url, hubspot.token, clock, overrides=overrides, roster=roster
        )
        sink, inbox = Facts(), Inbox()
        ports = IngestPorts(
            parsers={"hubspot": source},
            inbox=inbox,  # type: ignore[arg-type]
            dead_letters=None,  # type: ignore[arg-type]
            ledger=FakeLedger(),
            sink=sink,  # type: ignore[arg-type]
            roster=roster,
            crm=crm,
        )
        deliveries = [
            webhook(source, secret, [event("ticket.creation", 9001122471)]),
            webhook(source, secret, [event("object.creation", 88120045123, "0-49")]),
            webhook(
                source,
                secret,
                [event("object.creation", 501, "0-49"), event("object.creation", 502, "0-49")],
            ),
            webhook(source, secret, [event("ticket.creation", 601), event("ticket.creation", 602)]),
            webhook(source, secret, [event("ticket.creation", 603)]),
        ]

        outcome = await process_batch(
            deliveries, ports, IngestConfig(zone=ZoneInfo("America/New_York")), NOW
        )

    facts = {(f.EventKey, f.MetricID, f.AgentKey) for f in sink.facts}
    assert facts == {
        ("hubspot:ticket:9001122471", MetricID.CASES, "7"),
        ("hubspot:email:88120045123", MetricID.EMAILS, "7"),
        ("hubspot:ticket:603", MetricID.CASES, "8"),
    }
    reasons = {e.key: (e.status.value, e.reason) for env in outcome.envelopes for e in env.events}
    assert reasons["hubspot:email:501"] == ("ignored", "not_outbound")
    assert reasons["hubspot:email:502"] == ("ignored", "failed_email")
    assert reasons["hubspot:ticket:601"] == ("gated", "unknown_owner")
    assert reasons["hubspot:ticket:602"] == ("gated", "unknown_owner")
    assert len(inbox.acked) == 5  # gated and ignored are answered, never retried or dropped

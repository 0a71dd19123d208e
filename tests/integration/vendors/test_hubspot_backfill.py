"""HubSpot backfill over real HTTP: the CRM search API on the emulator (paging, the 10,000
cap, the search rate limit, 429s) → the webhook's ingest path on the SQLite ledger and
warehouse. Half a week of webhooks arrived; the backfill counts the rest, once."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.adapters_out.hubspot.crm import HubSpotCrm, SearchLimits
from pulse.adapters_out.sqlite.ledger import SqliteLedger
from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.core.control import Caller
from pulse.core.ingest import IngestConfig, IngestPorts, process_batch
from pulse.core.model import (
    Delivery,
    DimRow,
    FactEvent,
    IngestEnvelope,
    RosterAgent,
    RosterSnapshot,
)
from pulse.core.reconcile import ReconcilePorts, Window, reconcile_hubspot
from tests.emulators.hubspot import HubSpotEmulator
from tests.fakes import FakeAudit, FakeClock, FakeDeadLetters, FakeInbox, FakeLeases, FakeRoster

NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)  # the seeded samples (11-05) fall outside
ZONE = ZoneInfo("America/New_York")
SMITH_OWNER = "6166860"  # the emulator's sample owner: jsmith@example.test
ROSTER = RosterSnapshot((RosterAgent("7", "John Smith", "jsmith@example.test"),))


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


class Appends:
    """The warehouse, remembering every fact appended (its primary key would hide a repeat)."""

    def __init__(self, warehouse: SqliteWarehouse) -> None:
        self.warehouse = warehouse
        self.keys: Counter[str] = Counter()

    async def append(self, facts: Sequence[FactEvent]) -> None:
        self.keys.update(f.EventKey for f in facts)
        await self.warehouse.append(facts)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        await self.warehouse.upsert(rows)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        await self.warehouse.replace(table, rows)


class Pulse:
    """The ingest path as the daemon wires it, on SQLite files and the HubSpot emulator."""

    def __init__(
        self,
        home: Path,
        http: httpx.AsyncClient,
        hubspot: HubSpotEmulator,
        limits: SearchLimits | None = None,
    ) -> None:
        self.clock = FakeClock(NOW)
        self.warehouse = SqliteWarehouse(home / "warehouse.sqlite")
        self.ledger = SqliteLedger(home / "ledger.sqlite", self.clock)
        self.sink = Appends(self.warehouse)
        self.source = HubSpotSource(client_secret=None, auth="none")
        self.crm = HubSpotCrm(
            http,
            hubspot.base_url,
            hubspot.token,
            self.clock,
            backoff_sec=0.01,
            search=limits or SearchLimits(interval_sec=0.0),
        )
        self.ingest = IngestPorts(
            parsers={"hubspot": self.source},
            inbox=FakeInbox(),
            dead_letters=FakeDeadLetters(self.clock),
            ledger=self.ledger,
            sink=self.sink,  # type: ignore[arg-type]
            roster=FakeRoster(ROSTER),
            crm=self.crm,
        )
        self.audit = FakeAudit()
        self.config = IngestConfig(zone=ZONE)

    def ports(self) -> ReconcilePorts:
        return ReconcilePorts(
            self.crm, self.ingest, self.source, self.audit, FakeLeases(), self.clock
        )

    async def webhook(self, subscription: str, object_id: str, occurred: datetime) -> None:
        """HubSpot's webhook, as the edge stored it, processed by a worker."""
        item = {
            "eventId": 1000 + int(object_id),
            "subscriptionId": 3849706,
            "portalId": 21508821,
            "occurredAt": int(occurred.timestamp() * 1000),
            "subscriptionType": subscription,
            "attemptNumber": 0,
            "objectId": int(object_id),
            "changeFlag": "CREATED",
            "changeSource": "CRM_UI",
        }
        if subscription == "object.creation":
            item["objectTypeId"] = "0-49"
        body = json.dumps([item]).encode()
        envelope = IngestEnvelope(f"req-{object_id}", "hubspot", NOW, body, {})
        await process_batch(
            [Delivery(envelope, envelope.request_id)], self.ingest, self.config, NOW
        )

    async def backfill(self, days: int = 7, **kw: object) -> dict[str, int]:
        summary = await reconcile_hubspot(
            Window.last_days(NOW, days),
            self.ports(),
            self.config,
            Caller("test", "run"),
            **kw,  # type: ignore[arg-type]
        )
        return dict(summary.counts)

    def facts(self) -> list[tuple[str, int]]:
        conn = sqlite3.connect(self.warehouse.db.path)
        try:
            return list(conn.execute("SELECT EventKey, COUNT(*) FROM FactEvent GROUP BY EventKey"))
        finally:
            conn.close()

    async def close(self) -> None:
        await self.ledger.close()
        await self.warehouse.close()


def a_week(hubspot: HubSpotEmulator) -> list[tuple[str, str, datetime]]:
    """A week of activity in the CRM: per day 6 outbound emails and 2 tickets of John Smith,
    1 inbound email and 1 ticket of an owner on no roster. Returns the counting ones."""
    hubspot.add_owner("111", "stranger@example.test")
    counting: list[tuple[str, str, datetime]] = []
    next_id = 1
    for day in range(7):
        for n in range(10):
            created = NOW - timedelta(days=day, hours=1 + n)
            object_id, next_id = str(next_id), next_id + 1
            if n < 6:
                hubspot.add_email(object_id, SMITH_OWNER, created=iso(created))
                counting.append(("object.creation", object_id, created))
            elif n < 8:
                hubspot.add_ticket(object_id, SMITH_OWNER, created=iso(created))
                counting.append(("ticket.creation", object_id, created))
            elif n == 8:
                hubspot.add_email(object_id, SMITH_OWNER, "INCOMING_EMAIL", created=iso(created))
            else:
                hubspot.add_ticket(object_id, "111", created=iso(created))
    return counting


async def test_half_a_week_of_webhooks_then_a_backfill_counts_every_event_once(
    tmp_path: Path,
) -> None:
    async with HubSpotEmulator() as hubspot, httpx.AsyncClient() as http:
        counting = a_week(hubspot)
        pulse = Pulse(tmp_path, http, hubspot)
        try:
            for subscription, object_id, created in counting[::2]:
                await pulse.webhook(subscription, object_id, created)
            lookups_before = sum(v for k, v in hubspot.hits.items() if "/objects/" in k)

            first = await pulse.backfill()
            second = await pulse.backfill()
            facts = pulse.facts()
        finally:
            await pulse.close()

    kind = {"object.creation": "email", "ticket.creation": "ticket"}
    expected = {f"hubspot:{kind[s]}:{i}" for s, i, _ in counting}
    assert first == {"found": 70, "new": 28, "already": 28, "gated": 7, "ignored": 7}
    assert second == {"found": 70, "new": 0, "already": 56, "gated": 7, "ignored": 7}
    assert dict(facts) == dict.fromkeys(expected, 1)
    assert set(pulse.sink.keys) == expected and set(pulse.sink.keys.values()) == {1}
    assert sum(v for k, v in hubspot.hits.items() if "/objects/" in k and "search" not in k) == (
        lookups_before
    ), "the backfill reads objects from the search, never one GET per object"
    assert [r.outcome for r in pulse.audit.records] == ["applied", "unchanged"]


async def test_a_window_over_the_search_cap_is_split_until_each_part_fits(tmp_path: Path) -> None:
    async with (
        HubSpotEmulator(search_cap=20, search_per_second=1000) as hubspot,
        httpx.AsyncClient() as http,
    ):
        for n in range(50):
            created = NOW - timedelta(hours=1, minutes=n)
            hubspot.add_email(str(n + 1), SMITH_OWNER, created=iso(created))
        pulse = Pulse(
            tmp_path, http, hubspot, SearchLimits(page_size=10, max_results=20, interval_sec=0.0)
        )
        try:
            counts = await pulse.backfill(days=1)
        finally:
            await pulse.close()
        windows = {
            tuple(f["value"] for f in s["filterGroups"][0]["filters"])
            for s in hubspot.searches
            if "hs_createdate" in str(s)
        }

    assert counts["found"] == 50 and counts["new"] == 50
    assert set(pulse.sink.keys) == {f"hubspot:email:{n + 1}" for n in range(50)}
    assert set(pulse.sink.keys.values()) == {1}
    assert len(windows) >= 4  # the day, its halves, and halves of those until each holds ≤ 20
    assert all(int(s.get("after") or 0) + 10 <= 20 for s in hubspot.searches)


@pytest.mark.slow
async def test_a_window_over_hubspots_10000_cap_is_split_and_counted_once(tmp_path: Path) -> None:
    async with HubSpotEmulator(search_per_second=1000) as hubspot, httpx.AsyncClient() as http:
        for n in range(10_050):
            created = NOW - timedelta(seconds=8 * n + 1)  # 22 h, all in one day's window
            hubspot.add_email(str(n + 1), SMITH_OWNER, created=iso(created))
        pulse = Pulse(tmp_path, http, hubspot)
        try:
            counts = await pulse.backfill(days=1)
            facts = pulse.facts()
        finally:
            await pulse.close()

    assert counts["found"] == 10_050 and counts["new"] == 10_050
    assert len(facts) == 10_050 and set(pulse.sink.keys.values()) == {1}
    first_pages = [s for s in hubspot.searches if not s.get("after")]
    assert len(first_pages) == 4  # the day (10,050: over), its two halves, and the tickets
    assert max(int(s.get("after") or 0) for s in hubspot.searches) + 200 <= 10_000


@pytest.mark.slow
async def test_a_429_mid_paging_waits_its_retry_after_and_resumes_at_the_same_page(
    tmp_path: Path,
) -> None:
    async with HubSpotEmulator(search_per_second=3) as hubspot, httpx.AsyncClient() as http:
        for n in range(45):
            created = NOW - timedelta(hours=2, minutes=n)
            hubspot.add_email(str(n + 1), SMITH_OWNER, created=iso(created))
        pulse = Pulse(tmp_path, http, hubspot, SearchLimits(page_size=5, interval_sec=0.0))
        try:
            counts = await pulse.backfill(days=1)
        finally:
            await pulse.close()

    assert hubspot.search_throttled >= 1, "the emulator throttled the paging"
    assert counts["found"] == 45 and counts["new"] == 45
    assert set(pulse.sink.keys) == {f"hubspot:email:{n + 1}" for n in range(45)}
    assert set(pulse.sink.keys.values()) == {1}
    pages = [int(s.get("after") or 0) for s in hubspot.searches if "hs_createdate" in str(s)]
    assert pages == list(range(0, 45, 5))  # every page asked for once it answered, in order


@pytest.mark.slow
async def test_searches_spaced_by_the_rate_limit_are_never_throttled(tmp_path: Path) -> None:
    async with HubSpotEmulator(search_per_second=5) as hubspot, httpx.AsyncClient() as http:
        for n in range(30):
            hubspot.add_email(str(n + 1), SMITH_OWNER, created=iso(NOW - timedelta(minutes=n + 1)))
        pulse = Pulse(tmp_path, http, hubspot, SearchLimits(page_size=5, interval_sec=0.25))
        try:
            counts = await pulse.backfill(days=1)
        finally:
            await pulse.close()

    assert counts["new"] == 30
    assert hubspot.search_throttled == 0

"""The reconcile use case on fakes: what the CRM lists goes through the webhook's ingest path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.core.control import Busy, Caller
from pulse.core.ingest import IngestConfig, IngestPorts, process_batch
from pulse.core.model import CrmObject, Delivery, RosterAgent, RosterSnapshot
from pulse.core.reconcile import ReconcilePorts, Window, reconcile_hubspot
from pulse.ports.directory import CrmPage
from tests.fakes import (
    FakeAudit,
    FakeClock,
    FakeCrm,
    FakeDeadLetters,
    FakeInbox,
    FakeLeases,
    FakeLedger,
    FakeRoster,
    FakeSink,
)

NOW = datetime(2025, 11, 8, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("America/New_York")
CALLER = Caller("test", "run-1")
SMITH = RosterAgent("7", "John Smith", "jsmith@example.test")


def email(object_id: str, hours_ago: float, **kw: object) -> CrmObject:
    values: dict[str, object] = {
        "owner_id": "6166860",
        "owner_email": "jsmith@example.test",
        "direction": "EMAIL",
        "status": "SENT",
    }
    values.update(kw)
    return CrmObject(
        "email",
        object_id,
        created_at=NOW - timedelta(hours=hours_ago),
        **values,  # type: ignore[arg-type]
    )


def ticket(object_id: str, hours_ago: float, owner_email: str | None) -> CrmObject:
    return CrmObject(
        "ticket", object_id, "1", owner_email, created_at=NOW - timedelta(hours=hours_ago)
    )


class Listing:
    """CrmListing over a list, `page_size` a page; remembers each window asked for."""

    def __init__(self, objects: Sequence[CrmObject], page_size: int = 2) -> None:
        self.objects, self.page_size = list(objects), page_size
        self.asked: list[tuple[str, datetime, datetime]] = []

    async def created(
        self, object_type: str, since: datetime, until: datetime
    ) -> AsyncIterator[CrmPage]:
        self.asked.append((object_type, since, until))
        found = [
            o
            for o in self.objects
            if o.object_type == object_type and o.created_at and since <= o.created_at < until
        ]
        for start in range(0, len(found), self.page_size):
            yield CrmPage(tuple(found[start : start + self.page_size]), len(found))


class World:
    def __init__(self, objects: Sequence[CrmObject]) -> None:
        self.clock = FakeClock(NOW)
        self.ledger = FakeLedger(self.clock)
        self.sink = FakeSink()
        self.audit = FakeAudit()
        self.leases = FakeLeases()
        self.crm = FakeCrm({(o.object_type, o.object_id): o for o in objects})
        self.listing = Listing(objects)
        self.source = HubSpotSource(client_secret=None, auth="none")
        self.ingest = IngestPorts(
            parsers={"hubspot": self.source},
            inbox=FakeInbox(),
            dead_letters=FakeDeadLetters(self.clock),
            ledger=self.ledger,
            sink=self.sink,
            roster=FakeRoster(RosterSnapshot((SMITH,))),
            crm=self.crm,
        )
        self.ports = ReconcilePorts(
            self.listing, self.ingest, self.source, self.audit, self.leases, self.clock
        )
        self.config = IngestConfig(zone=ZONE)

    async def webhook(self, obj: CrmObject) -> None:
        """The webhook of `obj` arrived and a worker processed it."""
        envelope = self.source.envelope(obj, NOW)
        await process_batch([Delivery(envelope, "r")], self.ingest, self.config, NOW)

    async def backfill(self, days: int = 7, dry_run: bool = False) -> dict[str, int]:
        summary = await reconcile_hubspot(
            Window.last_days(NOW, days), self.ports, self.config, CALLER, dry_run=dry_run
        )
        return dict(summary.counts)


OBJECTS = [
    email("1", 1),
    email("2", 30),
    email("3", 50, direction="INCOMING_EMAIL"),
    email("4", 70, status="BOUNCED"),
    ticket("10", 5, "jsmith@example.test"),
    ticket("11", 6, "stranger@example.test"),
    ticket("12", 200, "jsmith@example.test"),  # older than the window
]


async def test_objects_a_webhook_missed_are_counted_and_what_was_counted_is_already() -> None:
    world = World(OBJECTS)
    await world.webhook(OBJECTS[0])

    counts = await world.backfill(days=7)

    assert counts == {"found": 6, "new": 2, "already": 1, "gated": 1, "ignored": 2}
    assert {f.EventKey for f in world.sink.facts()} == {
        "hubspot:email:1",
        "hubspot:email:2",
        "hubspot:ticket:10",
    }
    assert world.crm.lookups == [("email", "1")]  # only the webhook asked the CRM


async def test_a_second_backfill_adds_nothing() -> None:
    world = World(OBJECTS)
    await world.backfill()
    writes = world.sink.writes

    again = await world.backfill()

    assert again["new"] == 0 and again["already"] == 3
    assert world.sink.writes == writes
    assert [r.outcome for r in world.audit.records] == ["applied", "unchanged"]
    assert world.audit.records[0].counts["new"] == 3


async def test_a_backfilled_fact_is_the_one_the_webhook_would_have_made() -> None:
    by_webhook, by_backfill = World(OBJECTS), World(OBJECTS)
    for obj in OBJECTS[:2]:
        await by_webhook.webhook(obj)

    await by_backfill.backfill()

    webhook_facts = {f.EventKey: f for f in by_webhook.sink.facts()}
    for fact in by_backfill.sink.facts():
        if fact.EventKey in webhook_facts:
            assert fact == webhook_facts[fact.EventKey]
    assert len(webhook_facts) == 2


async def test_a_dry_run_writes_nothing_and_lists_what_is_missing() -> None:
    world = World(OBJECTS)
    await world.webhook(OBJECTS[0])
    done_before, writes_before = set(world.ledger.done), world.sink.writes

    summary = await reconcile_hubspot(
        Window.last_days(NOW, 7), world.ports, world.config, CALLER, dry_run=True
    )

    assert dict(summary.counts) == {"found": 6, "new": 2, "already": 1, "gated": 1, "ignored": 2}
    assert [c for c in summary.changes if c.startswith("missing")] == [
        "missing hubspot:email:2 (EMAILS)",
        "missing hubspot:ticket:10 (CASES)",
    ]
    assert world.ledger.done == done_before and not world.ledger.pending
    assert world.sink.writes == writes_before
    assert world.leases.taken == []
    assert [r.outcome for r in world.audit.records] == ["dry_run"]


async def test_an_event_in_flight_elsewhere_is_left_to_retry_not_counted_twice() -> None:
    world = World(OBJECTS)
    world.ledger.hold("hubspot:email:2")

    summary = await reconcile_hubspot(Window.last_days(NOW, 7), world.ports, world.config, CALLER)

    assert summary.counts["retry"] == 1 and summary.counts["new"] == 2
    assert summary.outcome.startswith("incomplete: 1 to retry")
    assert "hubspot:email:2" not in {f.EventKey for f in world.sink.facts()}


async def test_one_backfill_at_a_time() -> None:
    world = World(OBJECTS)
    world.leases.held["control:reconcile:hubspot"] = "someone-else"

    with pytest.raises(Busy):
        await world.backfill()

    assert world.sink.writes == 0


def test_a_window_of_dates_runs_from_local_midnight_through_the_last_date() -> None:
    window = Window.of_dates(date(2025, 11, 3), date(2025, 11, 4), ZONE, NOW)

    assert window.since == datetime(2025, 11, 3, 5, 0, tzinfo=UTC)
    assert window.until == datetime(2025, 11, 5, 5, 0, tzinfo=UTC)
    assert Window.of_dates(date(2025, 11, 3), None, ZONE, NOW).until == NOW


def test_the_replayed_webhook_parses_as_the_creation_webhook_hubspot_sends() -> None:
    source = HubSpotSource(client_secret=None, auth="none")
    created = datetime.fromtimestamp(1762363010.977, UTC)

    envelope = source.envelope(
        CrmObject("email", "88120045123", None, None, created_at=created), NOW
    )
    [event] = source.parse(envelope)

    assert (event.kind.value, event.object_id, event.object_type_id) == (
        "email",
        "88120045123",
        "0-49",
    )
    assert event.event_name == "object.creation"
    assert event.occurred_at == created
    [ticket_event] = source.parse(source.envelope(ticket("9001122471", 1, None), NOW))
    assert (ticket_event.kind.value, ticket_event.event_name) == ("ticket", "ticket.creation")


async def test_with_two_sinks_the_gap_is_each_missed_event_once_and_each_sink_gets_it() -> None:
    from dataclasses import replace

    from pulse.adapters_out.ledger_namespace import NamespacedLedger
    from pulse.core.lanes import SinkLane

    world = World(OBJECTS)
    fabric = FakeSink()
    lanes = (
        SinkLane("powerbi", world.ledger, world.sink, "sink:powerbi"),
        SinkLane("fabric", NamespacedLedger(world.ledger, "fabric/"), fabric, "sink:fabric"),
    )
    world.ingest = replace(world.ingest, lanes=lanes)
    world.ports = replace(world.ports, ingest=world.ingest)
    await world.webhook(OBJECTS[0])

    counts = await world.backfill(days=7)

    assert counts == {"found": 6, "new": 2, "already": 1, "gated": 1, "ignored": 2}
    assert {f.EventKey for f in fabric.facts()} == {f.EventKey for f in world.sink.facts()}
    assert len(fabric.facts()) == 3

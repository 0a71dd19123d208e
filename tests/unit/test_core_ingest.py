"""`process_batch` against in-memory ports: what gets counted, acked, retried or dead-lettered."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.core.ingest import BatchOutcome, IngestConfig, IngestPorts, Status, process_batch
from pulse.core.model import (
    CrmObject,
    Delivery,
    Goal,
    IngestEnvelope,
    MetricID,
    RosterAgent,
    RosterSnapshot,
    ShiftRule,
)
from tests.fakes import (
    FakeClock,
    FakeCrm,
    FakeDeadLetters,
    FakeInbox,
    FakeLedger,
    FakeRoster,
    FakeSink,
)

NEW_YORK = ZoneInfo("America/New_York")
CALL_ID = 54363660
CALL_KEY = f"aloware:{CALL_ID}"
ADA = RosterAgent("42", "Ada Agent", "ada@example.test")
JOHN = RosterAgent("7", "John Smith", "jsmith@example.test")
TICKET_AT_MS = 1762362142417  # 2025-11-05 17:02:22.417 UTC

_request_ids = itertools.count(1)


# --- deliveries -------------------------------------------------------------------------------


def delivery(source: str, body: bytes, attempt: int = 1) -> Delivery:
    request_id = f"req-{next(_request_ids)}"
    envelope = IngestEnvelope(
        request_id=request_id,
        source=source,
        received_at=datetime(2025, 11, 5, 17, 30, tzinfo=UTC),
        body=body,
    )
    return Delivery(envelope, receipt=f"receipt-{request_id}", attempt=attempt)


def aloware(
    event: str = "OutboundPhoneCall-DispositionCompleted",
    *,
    communication_id: int | str = CALL_ID,
    kind: int = 1,
    direction: int = 2,
    user_id: int | str | None = 42,
    disposition: str | None = "completed",
    disposition_code: int = 4,
    created_at: str = "2025-11-05 17:22:28",
    attempt: int = 1,
    **fields: Any,
) -> Delivery:
    body: dict[str, Any] = {
        "id": communication_id,
        "user_id": user_id,
        "direction": direction,
        "type": kind,
        "disposition_status2": disposition_code,
        "customer_leg_status": 6,
        "duration": 44,
        "talk_time": 40,
        "created_at": created_at,
        # The lead's zone: never used for business dates.
        "contact": {"timezone": "Pacific/Auckland"},
    }
    if disposition is not None:
        body["disposition_status"] = disposition
    body.update(fields)
    return delivery("aloware", json.dumps({"event": event, "body": body}).encode(), attempt)


def initiated(communication_id: int = CALL_ID) -> Delivery:
    return aloware(
        "OutboundPhoneCall",
        communication_id=communication_id,
        disposition=None,
        disposition_code=1,
    )


def sms(communication_id: int = 1771234501, **kwargs: Any) -> Delivery:
    return aloware(
        "OutboundSMS-DispositionCompleted", communication_id=communication_id, kind=2, **kwargs
    )


def ticket_created(object_id: int = 9001122471, event_id: int = 1371122934) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "occurredAt": TICKET_AT_MS,
        "subscriptionType": "ticket.creation",
        "objectId": object_id,
    }


def email_created(object_id: int = 88120045123, event_id: int = 2145459286) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "occurredAt": 1762363010977,
        "subscriptionType": "object.creation",
        "objectTypeId": "0-49",
        "objectId": object_id,
    }


def hubspot(*events: dict[str, Any], attempt: int = 1) -> Delivery:
    return delivery("hubspot", json.dumps(list(events)).encode(), attempt)


def email(
    object_id: int, owner: str | None, direction: str = "EMAIL", status: str = "SENT"
) -> CrmObject:
    return CrmObject("email", str(object_id), "6166860", owner, direction, status)


def ticket(object_id: int, owner: str | None = "jsmith@example.test") -> CrmObject:
    return CrmObject("ticket", str(object_id), "6166860", owner)


# --- the world a batch runs in ----------------------------------------------------------------


@dataclass
class World:
    clock: FakeClock
    inbox: FakeInbox
    dead_letters: FakeDeadLetters
    ledger: FakeLedger
    sink: FakeSink
    roster: FakeRoster
    crm: FakeCrm
    config: IngestConfig
    shifts: Any = None

    @property
    def ports(self) -> IngestPorts:
        return IngestPorts(
            parsers={
                "aloware": AlowareSource("none", None),
                "hubspot": HubSpotSource(None, "none"),
            },
            inbox=self.inbox,
            dead_letters=self.dead_letters,
            ledger=self.ledger,
            sink=self.sink,
            roster=self.roster,
            crm=self.crm,
            shifts=self.shifts,
        )

    async def run(self, *deliveries: Delivery) -> BatchOutcome:
        return await process_batch(list(deliveries), self.ports, self.config, self.clock.now())

    def acked(self, d: Delivery) -> bool:
        return d.receipt in self.inbox.acked

    def retried(self, d: Delivery) -> bool:
        return self.inbox.retry_delay_of(d.receipt) is not None

    def fact_keys(self, metric: MetricID | None = None) -> list[str]:
        return sorted(
            f.EventKey for f in self.sink.facts() if metric is None or f.MetricID is metric
        )


@pytest.fixture
def world() -> World:
    clock = FakeClock(datetime(2025, 11, 5, 20, 0, tzinfo=UTC))
    crm = FakeCrm()
    crm.add(email(88120045123, "jsmith@example.test"))
    crm.add(ticket(9001122471))
    return World(
        clock=clock,
        inbox=FakeInbox(),
        dead_letters=FakeDeadLetters(clock),
        ledger=FakeLedger(clock),
        sink=FakeSink(),
        roster=FakeRoster(RosterSnapshot((ADA, JOHN), ring_group_id="29109")),
        crm=crm,
        config=IngestConfig(zone=NEW_YORK, goals={m: Goal(m, 10.0, 0.8) for m in MetricID}),
    )


def status_of(outcome: BatchOutcome, d: Delivery) -> Status:
    return next(e.status for e in outcome.envelopes if e.request_id == d.envelope.request_id)


def reason_of(outcome: BatchOutcome, d: Delivery) -> str:
    return next(e.reason for e in outcome.envelopes if e.request_id == d.envelope.request_id)


# --- one fact per communication -----------------------------------------------------------------


def six_deliveries_of_one_call() -> list[Delivery]:
    return [
        initiated(),
        aloware("OutboundPhoneCall-Ringing", disposition="ringing", disposition_code=1),
        aloware("OutboundPhoneCall-DispositionCompleted"),
        aloware("Communication-Disposed"),
        aloware("OutboundPhoneCall-DispositionCompleted"),
        aloware("OutboundPhoneCall-Completed", disposition=None, disposition_code=4),
    ]


async def test_six_deliveries_of_one_call_count_once(world: World) -> None:
    deliveries = six_deliveries_of_one_call()

    outcome = await world.run(*deliveries)

    assert world.fact_keys() == [CALL_KEY]
    fact = world.sink.facts()[0]
    assert (fact.MetricID, fact.AgentKey, fact.DurationSec) == (MetricID.CALLS, "42", 44)
    assert all(world.acked(d) for d in deliveries)
    assert outcome.event_counts() == {"accepted": 1, "duplicate": 3, "ignored": 2}


async def test_the_fan_out_split_over_two_batches_still_counts_once(world: World) -> None:
    deliveries = six_deliveries_of_one_call()

    await world.run(*deliveries[:3])
    second = await world.run(*deliveries[3:])

    assert world.fact_keys() == [CALL_KEY]
    assert second.envelope_counts() == {"duplicate": 3}
    assert world.ledger.state(CALL_KEY) == "DONE"


async def test_a_repeat_within_a_batch_is_a_duplicate_of_the_first(world: World) -> None:
    first, repeat = aloware(), aloware("Communication-Disposed")

    outcome = await world.run(first, repeat)

    assert status_of(outcome, first) is Status.ACCEPTED
    assert status_of(outcome, repeat) is Status.DUPLICATE
    assert reason_of(outcome, repeat) == "repeat within batch"
    assert world.acked(first) and world.acked(repeat)


async def test_a_key_the_ledger_already_counted_is_a_duplicate_and_acked(world: World) -> None:
    await world.run(aloware())
    redelivered = aloware()

    outcome = await world.run(redelivered)

    assert status_of(outcome, redelivered) is Status.DUPLICATE
    assert reason_of(outcome, redelivered) == "already counted"
    assert world.acked(redelivered)
    assert world.fact_keys() == [CALL_KEY]


async def test_a_key_in_flight_elsewhere_comes_back_later_and_is_not_acked(world: World) -> None:
    world.ledger.hold(CALL_KEY, lease=timedelta(seconds=30))
    busy = aloware()

    outcome = await world.run(busy)

    assert status_of(outcome, busy) is Status.RETRY
    assert world.retried(busy) and not world.acked(busy)
    assert world.sink.facts() == []
    assert world.ledger.items[CALL_KEY]["claim_token"] == "someone-else"  # not ours to release


async def test_a_claim_whose_lease_ran_out_is_taken_over(world: World) -> None:
    world.ledger.hold(CALL_KEY, lease=timedelta(seconds=30))
    world.clock.advance(31)
    again = aloware()

    outcome = await world.run(again)

    assert status_of(outcome, again) is Status.ACCEPTED
    assert world.ledger.state(CALL_KEY) == "DONE"
    assert world.fact_keys() == [CALL_KEY]


# --- rules, gate and facts ----------------------------------------------------------------------


async def test_an_agent_off_the_roster_is_gated_with_the_reason(world: World) -> None:
    stranger = aloware(user_id=99)

    outcome = await world.run(stranger)

    assert status_of(outcome, stranger) is Status.GATED
    assert reason_of(outcome, stranger) == "not_on_roster"
    assert world.acked(stranger)
    assert world.sink.facts() == [] and world.ledger.items == {}


async def test_an_empty_roster_in_count_everyone_mode_counts_any_agent(world: World) -> None:
    world.roster = FakeRoster(RosterSnapshot((), ring_group_id="29109", count_everyone=True))

    await world.run(aloware(user_id=99))

    assert [f.AgentKey for f in world.sink.facts()] == ["99"]


@pytest.mark.parametrize(
    ("uncounted", "reason"),
    [
        (initiated(), "not_final"),
        (aloware(direction=1), "not_outbound"),
        (aloware(user_id=None), "no_agent"),
        (
            # the agent leg never answered: no customer leg, no talk time
            aloware(
                disposition="failed", disposition_code=5, customer_leg_status=None, talk_time=0
            ),
            "failed_call",
        ),
        (sms(disposition="failed"), "failed_sms"),
        (delivery("aloware", b'{"test_payload": true}'), "probe"),
    ],
    ids=["initiation", "inbound", "no agent", "failed call", "failed sms", "probe"],
)
async def test_uncounted_aloware_events_are_ignored_acked_and_leave_no_trace(
    world: World, uncounted: Delivery, reason: str
) -> None:
    outcome = await world.run(uncounted)

    assert status_of(outcome, uncounted) is Status.IGNORED
    assert reason_of(outcome, uncounted) == reason
    assert world.acked(uncounted)
    assert world.sink.facts() == [] and world.ledger.items == {}


async def test_an_outbound_sms_counts_as_a_text(world: World) -> None:
    await world.run(sms())

    assert world.fact_keys(MetricID.TEXTS) == ["aloware:1771234501"]


async def test_a_fact_is_dated_and_shifted_in_the_business_zone_not_the_leads(
    world: World,
) -> None:
    await world.run(aloware(created_at="2025-11-05 02:30:00"))

    fact = world.sink.facts()[0]
    assert fact.OccurredAtUtc == datetime(2025, 11, 5, 2, 30, tzinfo=UTC)
    assert fact.OccurredAtLocal == datetime(2025, 11, 4, 21, 30)
    assert fact.DateKey == 20251104
    assert fact.MetricMonthKey == "2025-11:CALLS"
    assert fact.ShiftKey == "ALLDAY"


# --- HubSpot through the CRM ----------------------------------------------------------------------


async def test_an_outbound_hubspot_email_counts_for_the_owners_agent(world: World) -> None:
    sent = hubspot(email_created())

    outcome = await world.run(sent)

    assert status_of(outcome, sent) is Status.ACCEPTED
    assert world.fact_keys(MetricID.EMAILS) == ["hubspot:email:88120045123"]
    assert world.sink.facts()[0].AgentKey == "7"
    assert world.acked(sent)


async def test_the_owner_maps_to_an_agent_by_lower_cased_email(world: World) -> None:
    world.crm.add(email(555, "  JSmith@Example.TEST "))

    await world.run(hubspot(email_created(555)))

    assert [f.AgentKey for f in world.sink.facts()] == ["7"]


async def test_a_hubspot_ticket_counts_as_a_case(world: World) -> None:
    await world.run(hubspot(ticket_created()))

    fact = world.sink.facts()[0]
    assert (fact.EventKey, fact.MetricID, fact.AgentKey) == (
        "hubspot:ticket:9001122471",
        MetricID.CASES,
        "7",
    )
    assert fact.OccurredAtUtc == datetime(2025, 11, 5, 17, 2, 22, 417_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("crm_email", "reason"),
    [
        (email(556, "jsmith@example.test", direction="INCOMING_EMAIL"), "not_outbound"),
        (email(556, "jsmith@example.test", status="BOUNCED"), "failed_email"),
    ],
    ids=["inbound", "bounced"],
)
async def test_a_hubspot_email_that_was_not_sent_is_ignored(
    world: World, crm_email: CrmObject, reason: str
) -> None:
    world.crm.add(crm_email)
    received = hubspot(email_created(556))

    outcome = await world.run(received)

    assert status_of(outcome, received) is Status.IGNORED
    assert reason_of(outcome, received) == reason
    assert world.acked(received) and world.sink.facts() == []


@pytest.mark.parametrize("owner", ["someone.else@example.test", None], ids=["stranger", "none"])
async def test_a_hubspot_owner_not_on_the_roster_is_gated_as_unknown_owner(
    world: World, owner: str | None
) -> None:
    world.crm.add(email(557, owner))
    unowned = hubspot(email_created(557))

    outcome = await world.run(unowned)

    assert status_of(outcome, unowned) is Status.GATED
    assert reason_of(outcome, unowned) == "unknown_owner"
    assert world.acked(unowned) and world.sink.facts() == []


async def test_an_object_the_crm_does_not_know_is_dead_lettered(world: World) -> None:
    missing = hubspot(email_created(404404))

    outcome = await world.run(missing)

    assert status_of(outcome, missing) is Status.DEAD_LETTERED
    assert world.dead_letters.reason_for(missing.envelope.request_id) == "crm has no email 404404"
    assert world.acked(missing)
    assert world.sink.facts() == []


async def test_a_crm_that_cannot_answer_now_sends_the_envelope_back(world: World) -> None:
    world.crm.unavailable = True
    later = hubspot(email_created())

    outcome = await world.run(later)

    assert status_of(outcome, later) is Status.RETRY
    assert world.retried(later) and not world.acked(later)
    assert world.ledger.items == {} and world.dead_letters.letters == []


async def test_one_crm_lookup_serves_every_event_on_the_same_object(world: World) -> None:
    await world.run(hubspot(ticket_created(event_id=1), ticket_created(event_id=2)))

    assert world.crm.lookups == [("ticket", "9001122471")]
    assert world.fact_keys() == ["hubspot:ticket:9001122471"]


# --- sink failures ------------------------------------------------------------------------------


async def test_a_transient_sink_error_releases_the_claim_and_retries_with_backoff(
    world: World,
) -> None:
    world.sink.fail_next("transient")
    third_attempt = aloware(attempt=3)

    outcome = await world.run(third_attempt)

    assert status_of(outcome, third_attempt) is Status.RETRY
    assert "sink unavailable" in reason_of(outcome, third_attempt)
    assert world.inbox.retry_delay_of(third_attempt.receipt) == timedelta(seconds=8)
    assert not world.acked(third_attempt)
    assert world.ledger.state(CALL_KEY) is None
    assert world.sink.facts() == []

    again = aloware(attempt=4)
    assert status_of(await world.run(again), again) is Status.ACCEPTED
    assert world.fact_keys() == [CALL_KEY]


async def test_a_failed_dimension_push_releases_every_claim(world: World) -> None:
    world.sink.fail_next("transient", on="upsert")
    call = aloware()

    outcome = await world.run(call)

    assert status_of(outcome, call) is Status.RETRY
    assert world.ledger.keys_in("PENDING") == set() and world.ledger.keys_in("DONE") == set()
    assert world.sink.facts() == []


async def test_a_permanent_sink_error_dead_letters_with_the_reason_and_releases_claims(
    world: World,
) -> None:
    world.sink.fail_next("permanent")
    rejected = aloware()

    outcome = await world.run(rejected)

    assert status_of(outcome, rejected) is Status.DEAD_LETTERED
    reason = world.dead_letters.reason_for(rejected.envelope.request_id)
    assert reason is not None
    assert reason.startswith("sink rejected") and "column MetricID rejected" in reason
    assert world.acked(rejected)
    assert world.ledger.state(CALL_KEY) is None  # a replay after the fix may count it


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 2), (2, 4), (5, 32), (6, 60), (8, 60), (9, 60), (40, 60), (49, 60), (10_000, 60)],
)
def test_the_retry_delay_doubles_per_attempt_up_to_a_minute(attempt: int, delay: int) -> None:
    assert IngestConfig(zone=NEW_YORK).retry_delay(attempt) == timedelta(seconds=delay)


async def test_an_envelope_back_for_the_hundredth_time_still_waits_the_capped_delay(
    world: World,
) -> None:
    world.crm.unavailable = True
    stubborn = hubspot(email_created(), attempt=100)

    outcome = await world.run(stubborn)

    assert status_of(outcome, stubborn) is Status.RETRY
    assert world.inbox.retry_delay_of(stubborn.receipt) == timedelta(seconds=60)


# --- envelopes that cannot be read ------------------------------------------------------------


async def test_an_unparseable_envelope_is_dead_lettered_and_the_rest_of_the_batch_counts(
    world: World,
) -> None:
    garbage = delivery("aloware", b"<html>not json</html>")
    call, text = aloware(), sms()

    outcome = await world.run(call, garbage, text)

    assert status_of(outcome, garbage) is Status.DEAD_LETTERED
    reason = world.dead_letters.reason_for(garbage.envelope.request_id)
    assert reason is not None and reason.startswith("unparseable: body is not JSON")
    assert [d.envelope.body for d in world.dead_letters.letters] == [b"<html>not json</html>"]
    assert world.fact_keys() == ["aloware:1771234501", CALL_KEY]
    assert all(world.acked(d) for d in (call, garbage, text))


async def test_an_envelope_from_a_source_without_a_parser_is_dead_lettered(world: World) -> None:
    stray = delivery("zendesk", b"{}")

    await world.run(stray)

    assert world.dead_letters.reason_for(stray.envelope.request_id) == (
        "no parser for source 'zendesk'"
    )
    assert world.acked(stray)


async def test_an_event_without_its_own_time_falls_back_to_when_it_was_received(
    world: World,
) -> None:
    untimed = ticket_created()
    del untimed["occurredAt"]

    await world.run(hubspot(untimed))

    assert world.sink.facts()[0].OccurredAtUtc == datetime(2025, 11, 5, 17, 30, tzinfo=UTC)


# --- dimensions -----------------------------------------------------------------------------------


def upserted(world: World, table: str) -> list[Any]:
    return [r for r in world.sink.upserted if type(r).__name__ == table]


async def test_dimension_rows_are_pushed_once_across_batches(world: World) -> None:
    await world.run(aloware(communication_id=1))
    await world.run(aloware(communication_id=2), aloware(communication_id=3))

    assert len(world.sink.facts()) == 3
    assert [r.DateKey for r in upserted(world, "DimDate")] == [20251105]
    assert [r.MetricMonthKey for r in upserted(world, "DimMetric")] == ["2025-11:CALLS"]
    assert [r.AgentKey for r in upserted(world, "DimAgent")] == ["42"]
    assert [r.ShiftKey for r in upserted(world, "DimShift")] == ["ALLDAY"]


async def test_dimension_rows_are_not_pushed_again_after_the_ledger_purges_old_facts(
    world: World,
) -> None:
    await world.run(aloware(communication_id=1))
    world.clock.advance(world.ledger.ttl.total_seconds() + 3600)
    await world.ledger.purge_expired()

    await world.run(aloware(communication_id=2))

    assert [r.DateKey for r in upserted(world, "DimDate")] == [20251105]


class AppliedRules:
    def __init__(self, *rules: ShiftRule) -> None:
        self.rules = rules or None

    async def current(self) -> tuple[ShiftRule, ...] | None:
        return self.rules


async def test_applied_shift_rules_win_over_the_configured_ones(world: World) -> None:
    world.shifts = AppliedRules()  # none applied yet: the SHIFTS setting (all day)
    await world.run(aloware(communication_id=1))
    world.shifts.rules = (
        ShiftRule("DAY", "Day", time(8, 0), time(20, 0)),
        ShiftRule("NIGHT", "Night", time(20, 0), time(8, 0)),
    )

    await world.run(aloware(communication_id=2))  # 17:22 UTC = 12:22 in New York

    assert [f.ShiftKey for f in world.sink.facts()] == ["ALLDAY", "DAY"]
    assert [r.ShiftKey for r in upserted(world, "DimShift")] == ["ALLDAY", "DAY"]


async def test_a_new_day_metric_or_agent_adds_only_its_own_dimension_rows(world: World) -> None:
    await world.run(aloware(communication_id=1))

    await world.run(
        sms(communication_id=2),  # same day and agent, new metric
        aloware(communication_id=3, created_at="2025-11-06 15:00:00"),  # next day
        hubspot(ticket_created()),  # another agent, another metric
    )

    assert sorted(r.DateKey for r in upserted(world, "DimDate")) == [20251105, 20251106]
    assert sorted(r.MetricMonthKey for r in upserted(world, "DimMetric")) == [
        "2025-11:CALLS",
        "2025-11:CASES",
        "2025-11:TEXTS",
    ]
    assert sorted(r.AgentKey for r in upserted(world, "DimAgent")) == ["42", "7"]
    assert len(upserted(world, "DimShift")) == 1


async def test_dimension_rows_describe_what_the_facts_refer_to(world: World) -> None:
    await world.run(aloware())

    (day,) = upserted(world, "DimDate")
    (metric,) = upserted(world, "DimMetric")
    (agent,) = upserted(world, "DimAgent")
    assert (day.Date, day.IsWorkday, day.WeekOfYear) == (date(2025, 11, 5), True, 45)
    assert (metric.MetricID, metric.Month, metric.DefaultGoal, metric.YellowFloorPct) == (
        MetricID.CALLS,
        "2025-11",
        10.0,
        0.8,
    )
    assert (agent.AgentName, agent.Email, agent.RingGroupId, agent.Active) == (
        "Ada Agent",
        "ada@example.test",
        "29109",
        True,
    )
    assert agent.SyncedAt == world.clock.now()


async def test_a_dimension_push_that_failed_is_pushed_again_next_time(world: World) -> None:
    world.sink.fail_next("transient", on="upsert")
    await world.run(aloware())

    await world.run(aloware())

    assert [r.DateKey for r in upserted(world, "DimDate")] == [20251105]
    assert world.fact_keys() == [CALL_KEY]


# --- an envelope's outcome is its most pressing event's ---------------------------------------------


async def test_an_envelope_with_an_event_still_to_do_comes_back_whole(world: World) -> None:
    world.crm.flaky.add(("email", "88120045123"))
    mixed = hubspot(ticket_created(), email_created())

    outcome = await world.run(mixed)

    assert status_of(outcome, mixed) is Status.RETRY
    assert world.retried(mixed) and not world.acked(mixed)
    assert world.fact_keys() == ["hubspot:ticket:9001122471"]

    world.crm.flaky.clear()
    again = hubspot(ticket_created(), email_created(), attempt=2)
    outcome = await world.run(again)

    assert status_of(outcome, again) is Status.ACCEPTED
    assert [e.status for e in outcome.envelopes[0].events] == [Status.DUPLICATE, Status.ACCEPTED]
    assert world.fact_keys() == ["hubspot:email:88120045123", "hubspot:ticket:9001122471"]


async def test_a_dead_lettered_event_outranks_an_accepted_one(world: World) -> None:
    mixed = hubspot(ticket_created(), email_created(404404))

    outcome = await world.run(mixed)

    assert status_of(outcome, mixed) is Status.DEAD_LETTERED
    assert world.dead_letters.reason_for(mixed.envelope.request_id) == "crm has no email 404404"
    assert world.fact_keys() == ["hubspot:ticket:9001122471"]  # a replay finds it counted
    assert world.acked(mixed)


async def test_an_accepted_event_outranks_duplicates_gates_and_ignores(world: World) -> None:
    world.crm.add(email(556, "jsmith@example.test", direction="INCOMING_EMAIL"))
    world.crm.add(email(557, "someone.else@example.test"))
    mixed = hubspot(
        ticket_created(event_id=1),
        ticket_created(event_id=2),
        email_created(556),
        email_created(557),
    )

    outcome = await world.run(mixed)

    assert status_of(outcome, mixed) is Status.ACCEPTED
    assert reason_of(outcome, mixed) == "counted"
    assert [e.status for e in outcome.envelopes[0].events] == [
        Status.ACCEPTED,
        Status.DUPLICATE,
        Status.IGNORED,
        Status.GATED,
    ]


async def test_a_duplicate_outranks_gated_which_outranks_ignored(world: World) -> None:
    await world.run(hubspot(ticket_created()))
    world.crm.add(email(556, "jsmith@example.test", direction="INCOMING_EMAIL"))
    world.crm.add(email(557, "someone.else@example.test"))
    seen_again = hubspot(ticket_created(), email_created(556), email_created(557))
    gated = hubspot(email_created(556), email_created(557))
    ignored = hubspot(email_created(556), {"subscriptionType": "contact.creation", "objectId": 1})

    outcome = await world.run(seen_again, gated, ignored)

    assert status_of(outcome, seen_again) is Status.DUPLICATE
    assert status_of(outcome, gated) is Status.GATED
    assert reason_of(outcome, gated) == "unknown_owner"
    assert status_of(outcome, ignored) is Status.IGNORED
    assert reason_of(outcome, ignored) == "no_rule; not_outbound"
    assert all(world.acked(d) for d in (seen_again, gated, ignored))


# --- reason codes (what /metrics counts by) -----------------------------------------------------


def codes_of(outcome: BatchOutcome) -> list[tuple[str, str]]:
    return sorted((e.status.value, e.code) for env in outcome.envelopes for e in env.events)


async def test_every_outcome_carries_a_fixed_reason_code_not_the_reason_text(world: World) -> None:
    world.ledger.hold("aloware:7", lease=timedelta(seconds=30))
    world.crm.add(email(556, "nobody@example.test"))

    outcome = await world.run(
        aloware(),
        aloware("Communication-Disposed"),
        aloware(communication_id=5, user_id=99),
        aloware(communication_id=6, direction=1),
        aloware(communication_id=7),
        hubspot(email_created(404404)),
        hubspot(email_created(556)),
    )

    assert codes_of(outcome) == [
        ("accepted", "counted"),
        ("dead_lettered", "crm_not_found"),
        ("duplicate", "repeat_in_batch"),
        ("gated", "not_on_roster"),
        ("gated", "unknown_owner"),
        ("ignored", "not_outbound"),
        ("retry", "in_flight_elsewhere"),
    ]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("transient", ("retry", "sink_unavailable")),
        ("permanent", ("dead_lettered", "sink_rejected")),
    ],
)
async def test_a_sink_failure_has_its_code(
    world: World, failure: str, expected: tuple[str, str]
) -> None:
    world.sink.fail_next(failure)

    outcome = await world.run(aloware())

    assert codes_of(outcome) == [expected]


async def test_a_crm_outage_and_a_repeat_in_a_later_batch_have_their_codes(world: World) -> None:
    world.crm.unavailable = True
    crm_down = await world.run(hubspot(email_created()))
    world.crm.unavailable = False
    await world.run(aloware())
    again = await world.run(aloware())

    assert codes_of(crm_down) == [("retry", "crm_unavailable")]
    assert codes_of(again) == [("duplicate", "already_counted")]


# --- failure signatures (incidents, DESIGN §7) ----------------------------------------------------


async def test_a_bad_created_at_is_counted_under_its_own_parse_signature(world: World) -> None:
    outcome = await world.run(aloware(created_at="yesterday"), aloware(created_at="soon"))

    count, sample = outcome.failures()["parse:aloware:bad_created_at"]
    assert count == 2 and "created_at 'soon'" in sample


async def test_a_sink_outage_is_counted_once_per_event_under_the_sinks_port(world: World) -> None:
    world.sink.fail_next("transient")

    outcome = await world.run(aloware(), sms())

    assert outcome.failures() == {
        "sink:unavailable": (2, "sink unavailable: 429 Too Many Requests (fake)")
    }


async def test_a_batch_that_went_well_met_no_failure(world: World) -> None:
    assert (await world.run(aloware(), sms())).failures() == {}

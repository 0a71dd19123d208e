"""Every captured webhook through parse → counting rules → event identity, as its _meta expects."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.core.identity import event_key, first_of_each
from pulse.core.model import Direction, IngestEnvelope, Kind, MetricID, SourceEvent
from pulse.core.rules import Policy, classify

SAMPLES = Path(__file__).parents[1] / "specs" / "webhooks"
WEBHOOK_SAMPLES = sorted(
    path.stem
    for path in SAMPLES.glob("*.json")
    if "expected_fact" in json.loads(path.read_text())["_meta"]
)
PARSERS = {"aloware": AlowareSource("none", None), "hubspot": HubSpotSource(None, auth="none")}


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def raw_body(captured: dict[str, Any]) -> bytes:
    # HubSpot samples keep the exact signed bytes; Aloware samples only the parsed body.
    if "raw_body" in captured:
        return str(captured["raw_body"]).encode()
    return json.dumps(captured["body"]).encode()


def events_of(name: str) -> list[SourceEvent]:
    provider = name.split("-", 1)[0]
    envelope = IngestEnvelope(
        request_id=f"req-{name}",
        source=provider,
        received_at=datetime(2025, 11, 5, 20, 0, tzinfo=UTC),
        body=raw_body(sample(name)),
    )
    return PARSERS[provider].parse(envelope)


def aloware_events(*payloads: dict[str, Any]) -> list[SourceEvent]:
    source = PARSERS["aloware"]
    return [
        event
        for index, payload in enumerate(payloads)
        for event in source.parse(
            IngestEnvelope(
                request_id=f"delivery-{index}",
                source="aloware",
                received_at=datetime(2025, 11, 5, 17, 30, tzinfo=UTC),
                body=json.dumps(payload).encode(),
            )
        )
    ]


def test_the_samples_directory_holds_webhooks_of_both_sources() -> None:
    assert any(n.startswith("aloware-") for n in WEBHOOK_SAMPLES)
    assert any(n.startswith("hubspot-") for n in WEBHOOK_SAMPLES)


@pytest.mark.parametrize("name", WEBHOOK_SAMPLES)
def test_each_captured_webhook_meets_its_documented_expectation(name: str) -> None:
    expected = sample(name)["_meta"]["expected_fact"]
    events = events_of(name)
    assert len(events) == 1
    (event,) = events
    verdict = classify(event)

    if not isinstance(expected, dict):
        assert not verdict.counts, verdict.reason
        return
    assert event_key(event) == expected["event_id"]
    metric = MetricID(expected["metric"])
    if event.source.value == "hubspot" and event.kind is Kind.EMAIL:
        # The webhook carries ids only; whether the email was sent is the CRM's answer.
        assert event.direction is Direction.UNKNOWN
        assert classify(replace(event, direction=Direction.OUTBOUND)).metric is metric
        return
    assert verdict.metric is metric, verdict.reason
    if "agent_id" in expected:
        assert event.agent_id == expected["agent_id"]
    if "occurred_at_utc" in expected:
        assert event.occurred_at == datetime.fromisoformat(expected["occurred_at_utc"])
    if "occurred_at_utc_ms" in expected:
        assert event.occurred_at is not None
        assert event.occurred_at.timestamp() * 1000 == expected["occurred_at_utc_ms"]


def test_a_failed_call_never_answered_is_not_counted_by_default() -> None:
    (event,) = events_of("aloware-call-failed")
    assert classify(event).reason == "failed_call"


def test_a_failed_call_never_answered_counts_when_the_policy_says_so() -> None:
    (event,) = events_of("aloware-call-failed")
    verdict = classify(event, Policy(count_failed_calls=True))
    assert verdict.metric is MetricID.CALLS
    assert event_key(event) == "aloware:940868500"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("aloware-test-payload", "probe"),
        ("aloware-transcription-summarized", "no_object_id"),
        ("aloware-call-initiated", "not_final"),
        ("aloware-inbound-call-missed", "not_outbound"),
        ("aloware-sms-inbound", "not_outbound"),
    ],
)
def test_uncounted_aloware_webhooks_are_ignored_for_their_documented_reason(
    name: str, reason: str
) -> None:
    (event,) = events_of(name)
    assert classify(event).reason == reason


def test_the_probe_and_the_transcription_summary_parse_without_an_identity() -> None:
    for name in ("aloware-test-payload", "aloware-transcription-summarized"):
        (event,) = events_of(name)
        assert event_key(event) is None


def test_six_deliveries_of_one_call_produce_one_countable_key() -> None:
    disposed = sample("aloware-call-disposed")["body"]
    as_numbers = copy.deepcopy(disposed)
    for field in ("id", "user_id", "type", "direction", "disposition_status2"):
        as_numbers["body"][field] = int(disposed["body"][field])

    initiated = copy.deepcopy(as_numbers)
    initiated["event"] = "OutboundPhoneCall"
    for field in ("disposition_status", "current_status"):
        del initiated["body"][field]
    initiated["body"].update(disposition_status2=1, customer_leg_status=None, talk_time=0)

    ringing = copy.deepcopy(initiated)
    ringing["body"]["disposition_status"] = "ringing"

    def renamed(payload: dict[str, Any], event_name: str) -> dict[str, Any]:
        return {**payload, "event": event_name}

    deliveries = (
        initiated,
        ringing,
        disposed,
        renamed(as_numbers, "OutboundPhoneCall-DispositionCompleted"),
        renamed(as_numbers, "OutboundPhoneCall-Recorded"),
        renamed(disposed, "communication.updated"),
    )
    events = aloware_events(*deliveries)

    counted = [e for e in events if classify(e).counts]
    assert {event_key(e) for e in events} == {"aloware:54363660"}
    assert {classify(e).reason for e in events if not classify(e).counts} == {"not_final"}
    firsts, repeats = first_of_each(counted, key=lambda e: str(event_key(e)))
    assert len(firsts) == 1
    assert len(repeats) == len(counted) - 1


def test_an_id_sent_as_a_string_or_a_number_is_one_event_key() -> None:
    disposed = sample("aloware-call-disposed")["body"]
    as_number = copy.deepcopy(disposed)
    as_number["body"]["id"] = int(disposed["body"]["id"])
    as_string, numeric = aloware_events(disposed, as_number)
    assert event_key(as_string) == event_key(numeric) == "aloware:54363660"


def test_an_outbound_sms_dispositioned_failed_is_not_counted() -> None:
    failed = sample("aloware-sms-outbound")["body"]
    failed["body"]["disposition_status"] = "Failed"
    (event,) = aloware_events(failed)
    assert classify(event).reason == "failed_sms"


def test_an_outbound_call_without_an_agent_is_not_counted() -> None:
    agentless = sample("aloware-call-disposed")["body"]
    agentless["body"]["user_id"] = -1
    (event,) = aloware_events(agentless)
    assert classify(event).reason == "no_agent"


def test_a_generic_ticket_object_creation_counts_as_a_case() -> None:
    (event,) = PARSERS["hubspot"].parse(
        IngestEnvelope(
            request_id="req-generic-ticket",
            source="hubspot",
            received_at=datetime(2025, 11, 5, 20, 0, tzinfo=UTC),
            body=b'[{"subscriptionType":"object.creation","objectTypeId":"0-5","objectId":77}]',
        )
    )
    assert event_key(event) == "hubspot:ticket:77"
    assert classify(event).metric is MetricID.CASES


def test_an_unknown_hubspot_subscription_is_ignored_by_the_rules() -> None:
    (event,) = PARSERS["hubspot"].parse(
        IngestEnvelope(
            request_id="req-contact",
            source="hubspot",
            received_at=datetime(2025, 11, 5, 20, 0, tzinfo=UTC),
            body=b'[{"subscriptionType":"contact.creation","objectId":12}]',
        )
    )
    assert not classify(event).counts

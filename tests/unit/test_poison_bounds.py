"""Poison never reaches a sink: parsing holds every stored value inside what every sink can
store, so the envelope is dead-lettered (UnparseableEnvelope) on its first attempt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.core.errors import UnparseableEnvelope
from pulse.core.model import IngestEnvelope
from tests.support.local import call_envelope

RECEIVED = datetime(2025, 11, 5, 17, 22, 30, tzinfo=UTC)


def aloware(**fields: object) -> IngestEnvelope:
    return call_envelope("r1", "54363660", **fields)


def hubspot(raw: str) -> IngestEnvelope:
    return IngestEnvelope("r2", "hubspot", RECEIVED, raw.encode(), {})


ALOWARE_POISON = {
    "a duration past Int64": ({"duration": 1e19}, "duration"),
    "a duration of a huge integer": ({"duration": 10**30}, "duration"),
    "year 1": ({"created_at": "0001-01-01 00:00:00"}, "time"),
    "year 0": ({"created_at": "0000-01-01 00:00:00"}, "created_at"),
    "year 9999": ({"created_at": "9999-12-31 23:59:59"}, "time"),
    "a lone surrogate id": ({"id": "\ud800"}, "object_id"),
    "a lone surrogate agent": ({"user_id": "\udfff"}, "agent_id"),
    "an id of 5,000 digits": ({"id": "9" * 5_000}, "id"),
    "an id of a huge number": ({"id": 10**40}, "id"),
    "an id of 200 characters": ({"id": "x" * 200}, "id"),
    "a lone surrogate disposition": ({"disposition_status": "\ud83dcompleted"}, "disposition"),
}


@pytest.mark.parametrize("case", sorted(ALOWARE_POISON))
def test_aloware_poison_is_unparseable_with_a_reason(case: str) -> None:
    fields, named = ALOWARE_POISON[case]
    with pytest.raises(UnparseableEnvelope, match=named):
        AlowareSource(auth="none", secret=None).parse(aloware(**fields))


def test_a_valid_aloware_call_still_parses() -> None:
    (event,) = AlowareSource(auth="none", secret=None).parse(aloware())
    assert event.object_id == "54363660" and event.duration_sec == 44


HUBSPOT_POISON = {
    "a lone surrogate objectId": (
        '[{"eventId":1,"subscriptionType":"ticket.creation","objectId":"\\ud800","occurredAt":1762362142417}]',
        "object_id",
    ),
    "an objectId past Int64": (
        '[{"eventId":1,"subscriptionType":"ticket.creation","objectId":' + "9" * 30 + "}]",
        "objectId",
    ),
    "occurredAt of 5,000 digits": (
        '[{"eventId":1,"subscriptionType":"ticket.creation","objectId":5,"occurredAt":"'
        + "9" * 5_000
        + '"}]',
        "occurredAt",
    ),
    "occurredAt in year 2300": (
        '[{"eventId":1,"subscriptionType":"ticket.creation","objectId":5,"occurredAt":10413792000000}]',
        "time",
    ),
}


@pytest.mark.parametrize("case", sorted(HUBSPOT_POISON))
def test_hubspot_poison_is_unparseable_with_a_reason(case: str) -> None:
    raw, named = HUBSPOT_POISON[case]
    with pytest.raises(UnparseableEnvelope, match=named):
        HubSpotSource(client_secret="s" * 32).parse(hubspot(raw))

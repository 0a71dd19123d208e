"""HubSpot source: v3 signatures on the captured samples, the event-array check, and parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_in.sources.base import AuthFailed, BadPayload, WebhookRequest
from pulse.adapters_in.sources.hubspot import HubSpotSource, signed_uri
from pulse.core.errors import UnparseableEnvelope
from pulse.core.model import Direction, IngestEnvelope, Kind, Source, SourceEvent

SAMPLES = Path(__file__).parents[1] / "specs" / "webhooks"
SIGNED_SAMPLES = ("hubspot-v3-email-object-creation", "hubspot-v3-ticket-creation")
FIVE_MINUTES_MS = 300_000


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def signed_request(name: str, **changes: Any) -> tuple[WebhookRequest, str]:
    """The sample exactly as HubSpot sent it, validated 1 s after its timestamp (see _meta)."""
    captured = sample(name)
    signing = captured["_meta"]["signing"]
    headers = {k.lower(): v for k, v in captured["headers"].items()}
    incoming = WebhookRequest(
        method=signing["method"],
        url=signing["request_uri"],
        headers=headers,
        body=captured["raw_body"].encode(),
        now_ms=int(headers["x-hubspot-request-timestamp"]) + 1000,
    )
    return replace(incoming, **changes), signing["test_client_secret"]


def without_headers(incoming: WebhookRequest, *names: str) -> WebhookRequest:
    return replace(incoming, headers={k: v for k, v in incoming.headers.items() if k not in names})


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's documented v3 source string, written out independently of the adapter."""
    source = f"{method}{uri}{body.decode()}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def fresh_request(
    secret: str, url: str, body: bytes, now_ms: int, signed_url: str
) -> WebhookRequest:
    timestamp = str(now_ms - 1000)
    return WebhookRequest(
        method="POST",
        url=url,
        headers={
            "x-hubspot-signature-v3": sign_v3(secret, "POST", signed_url, body, timestamp),
            "x-hubspot-request-timestamp": timestamp,
        },
        body=body,
        now_ms=now_ms,
    )


def envelope(body: bytes) -> IngestEnvelope:
    return IngestEnvelope(
        request_id="req-1",
        source="hubspot",
        received_at=datetime(2025, 11, 5, 18, 0, tzinfo=UTC),
        body=body,
    )


def parse(items: object) -> list[SourceEvent]:
    return HubSpotSource(None, auth="none").parse(envelope(json.dumps(items).encode()))


# ---- v3 signatures on the captured samples ---------------------------------------------


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_the_captured_v3_signature_is_accepted(name: str) -> None:
    incoming, secret = signed_request(name)
    HubSpotSource(secret).authenticate(incoming)


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_a_tampered_body_does_not_match_the_signature(name: str) -> None:
    incoming, secret = signed_request(name)
    tampered = replace(incoming, body=incoming.body.replace(b'"objectId":', b'"objectId":1'))
    with pytest.raises(AuthFailed, match="signature does not match"):
        HubSpotSource(secret).authenticate(tampered)


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_a_different_public_url_does_not_match_the_signature(name: str) -> None:
    incoming, secret = signed_request(name, url="https://pulse.example.com/webhooks/hubspot2")
    with pytest.raises(AuthFailed, match="signature does not match"):
        HubSpotSource(secret).authenticate(incoming)


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_another_client_secret_does_not_match_the_signature(name: str) -> None:
    incoming, _ = signed_request(name)
    with pytest.raises(AuthFailed, match="signature does not match"):
        HubSpotSource(secrets.token_hex(16)).authenticate(incoming)


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_a_request_older_than_five_minutes_is_refused(name: str) -> None:
    incoming, secret = signed_request(name)
    stale = replace(incoming, now_ms=incoming.now_ms - 1000 + FIVE_MINUTES_MS + 1)
    with pytest.raises(AuthFailed, match="timestamp older than 300 s"):
        HubSpotSource(secret).authenticate(stale)


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_a_request_four_minutes_old_is_still_accepted(name: str) -> None:
    incoming, secret = signed_request(name)
    HubSpotSource(secret).authenticate(replace(incoming, now_ms=incoming.now_ms + 240_000))


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_a_timestamp_more_than_five_minutes_in_the_future_is_refused(name: str) -> None:
    incoming, secret = signed_request(name)
    early = replace(incoming, now_ms=incoming.now_ms - 1000 - FIVE_MINUTES_MS - 1)
    with pytest.raises(AuthFailed, match="in the future"):
        HubSpotSource(secret).authenticate(early)


def test_the_age_limit_follows_max_age_ms() -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[0])
    with pytest.raises(AuthFailed, match=r"timestamp older than 0\.5 s"):
        HubSpotSource(secret, max_age_ms=500).authenticate(incoming)


def test_a_timestamp_that_is_not_a_number_is_refused() -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[0])
    garbled = replace(incoming, headers={**incoming.headers, "x-hubspot-request-timestamp": "soon"})
    with pytest.raises(AuthFailed, match="not epoch milliseconds"):
        HubSpotSource(secret).authenticate(garbled)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("x-hubspot-signature-v3", "missing X-HubSpot-Signature-v3"),
        ("x-hubspot-request-timestamp", "missing X-HubSpot-Request-Timestamp"),
    ],
)
def test_a_missing_v3_header_is_refused_by_name(header: str, message: str) -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[1])
    with pytest.raises(AuthFailed, match=message):
        HubSpotSource(secret).authenticate(without_headers(incoming, header))


def test_refusals_never_echo_the_client_secret() -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[0])
    with pytest.raises(AuthFailed) as refused:
        HubSpotSource(secret).authenticate(replace(incoming, body=b"[]"))
    assert secret not in str(refused.value)
    assert secret not in repr(HubSpotSource(secret))


def test_auth_none_accepts_an_unsigned_request() -> None:
    incoming, _ = signed_request(SIGNED_SAMPLES[0])
    HubSpotSource(None, auth="none").authenticate(
        without_headers(incoming, "x-hubspot-signature-v3")
    )


def test_v3_needs_a_client_secret() -> None:
    with pytest.raises(ValueError, match="client secret"):
        HubSpotSource(None)


# ---- v1 is opt-in and only when no v3 signature is present ----------------------------


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_the_captured_v1_signature_is_accepted_only_when_v1_is_allowed(name: str) -> None:
    incoming, secret = signed_request(name)
    v1_only = without_headers(incoming, "x-hubspot-signature-v3", "x-hubspot-request-timestamp")
    HubSpotSource(secret, allow_v1=True).authenticate(v1_only)
    with pytest.raises(AuthFailed, match="missing X-HubSpot-Signature-v3"):
        HubSpotSource(secret).authenticate(v1_only)


def test_a_v1_signature_over_a_tampered_body_is_refused() -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[0])
    v1_only = without_headers(incoming, "x-hubspot-signature-v3", "x-hubspot-request-timestamp")
    with pytest.raises(AuthFailed, match="signature does not match"):
        HubSpotSource(secret, allow_v1=True).authenticate(replace(v1_only, body=b"[{}]"))


def test_a_v1_signature_without_its_version_header_is_refused() -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[0])
    unversioned = without_headers(
        incoming,
        "x-hubspot-signature-v3",
        "x-hubspot-request-timestamp",
        "x-hubspot-signature-version",
    )
    with pytest.raises(AuthFailed, match="not v1"):
        HubSpotSource(secret, allow_v1=True).authenticate(unversioned)


def test_a_present_v3_signature_is_checked_even_when_v1_is_allowed() -> None:
    incoming, secret = signed_request(SIGNED_SAMPLES[0])
    stale = replace(incoming, now_ms=incoming.now_ms + FIVE_MINUTES_MS)
    with pytest.raises(AuthFailed, match="timestamp older than"):
        HubSpotSource(secret, allow_v1=True).authenticate(stale)


# ---- the signed URI: HubSpot's documented decoding -------------------------------------


def test_the_documented_escapes_are_decoded_in_the_signed_uri() -> None:
    encoded = "https://h.example/p%3Aa%2Fb?q=%3F%40%21%24%27%28%29%2A%2C%3B"
    assert signed_uri(encoded) == "https://h.example/p:a/b?q=?@!$'()*,;"


def test_other_escapes_stay_encoded_in_the_signed_uri() -> None:
    assert signed_uri("https://h.example/a%20b?x=%26%3D%25%3A") == (
        "https://h.example/a%20b?x=%26%3D%25:"
    )


def test_a_public_url_with_escapes_verifies_against_hubspots_decoded_form() -> None:
    secret = secrets.token_hex(16)
    body = b'[{"objectId":1,"subscriptionType":"ticket.creation"}]'
    incoming = fresh_request(
        secret,
        url="https://pulse.example.com/webhooks/hubspot?portal=a%3Ab%2Cc%20d",
        body=body,
        now_ms=1_762_363_016_000,
        signed_url="https://pulse.example.com/webhooks/hubspot?portal=a:b,c%20d",
    )
    HubSpotSource(secret).authenticate(incoming)


# ---- edge shape check ------------------------------------------------------------------


@pytest.mark.parametrize("name", SIGNED_SAMPLES)
def test_the_captured_arrays_pass_the_edge_check(name: str) -> None:
    incoming, _ = signed_request(name)
    HubSpotSource(None, auth="none").check(incoming)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "empty event array"),
        (b'{"objectId": 1}', "not a JSON array"),
        (b"objectId=1", "body is not JSON"),
        (b"[1]", "event 0 is not a JSON object"),
        (json.dumps([{"objectId": n} for n in range(101)]).encode(), "at most 100"),
    ],
)
def test_a_body_that_is_not_an_array_of_1_to_100_events_is_a_bad_payload(
    body: bytes, message: str
) -> None:
    incoming, _ = signed_request(SIGNED_SAMPLES[0], body=body)
    with pytest.raises(BadPayload, match=message):
        HubSpotSource(None, auth="none").check(incoming)


def test_exactly_100_events_pass_the_edge_check() -> None:
    body = json.dumps([{"objectId": n} for n in range(100)]).encode()
    incoming, _ = signed_request(SIGNED_SAMPLES[0], body=body)
    HubSpotSource(None, auth="none").check(incoming)


# ---- parsing ---------------------------------------------------------------------------


def test_a_ticket_creation_parses_into_a_ticket_event() -> None:
    incoming, _ = signed_request("hubspot-v3-ticket-creation")
    (event,) = HubSpotSource(None, auth="none").parse(envelope(incoming.body))
    assert event == SourceEvent(
        source=Source.HUBSPOT,
        kind=Kind.TICKET,
        event_name="ticket.creation",
        object_id="9001122471",
        occurred_at=datetime(2025, 11, 5, 17, 2, 22, 417_000, tzinfo=UTC),
        direction=Direction.UNKNOWN,
    )


def test_an_email_object_creation_parses_into_an_email_event_of_unknown_direction() -> None:
    incoming, _ = signed_request("hubspot-v3-email-object-creation")
    (event,) = HubSpotSource(None, auth="none").parse(envelope(incoming.body))
    assert (event.kind, event.object_id, event.object_type_id) == (
        Kind.EMAIL,
        "88120045123",
        "0-49",
    )
    assert event.direction is Direction.UNKNOWN
    assert event.occurred_at == datetime(2025, 11, 5, 17, 16, 50, 977_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subscription", "object_type_id", "kind"),
    [
        ("ticket.creation", None, Kind.TICKET),
        ("object.creation", "0-49", Kind.EMAIL),
        ("object.creation", "0-5", Kind.TICKET),
        ("object.creation", "0-1", Kind.UNKNOWN),
        ("contact.creation", None, Kind.UNKNOWN),
        ("ticket.propertyChange", None, Kind.UNKNOWN),
        ("object.propertyChange", "0-49", Kind.UNKNOWN),
    ],
)
def test_the_subscription_and_object_type_decide_the_kind(
    subscription: str, object_type_id: str | None, kind: Kind
) -> None:
    item: dict[str, Any] = {"subscriptionType": subscription, "objectId": 5, "occurredAt": 0}
    if object_type_id:
        item["objectTypeId"] = object_type_id
    (event,) = parse([item])
    assert event.kind is kind


def test_every_item_of_the_array_becomes_one_event_in_order() -> None:
    items = [
        {"subscriptionType": "ticket.creation", "objectId": n, "occurredAt": 1_762_362_142_417}
        for n in (3, 1, 2)
    ]
    assert [e.object_id for e in parse(items)] == ["3", "1", "2"]


def test_an_object_id_sent_as_a_string_gives_the_same_event() -> None:
    item = {"subscriptionType": "ticket.creation", "occurredAt": 1_762_362_142_417}
    assert parse([{**item, "objectId": "9001122471"}]) == parse([{**item, "objectId": 9001122471}])


def test_an_event_without_occurred_at_leaves_the_time_to_the_envelope() -> None:
    (event,) = parse([{"subscriptionType": "ticket.creation", "objectId": 1}])
    assert event.occurred_at is None


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ({"objectId": 1}, "not a JSON array"),
        ([1], "event 0 is not a JSON object"),
        ([{"subscriptionType": "ticket.creation"}], "event 0 has no objectId"),
        ([{"objectId": 1}, {"objectId": None}], "event 1 has no objectId"),
        ([{"objectId": [1]}], r"event 0: objectId \[1\] is not an id"),
        ([{"objectId": 1, "occurredAt": "yesterday"}], "occurredAt 'yesterday' is not epoch"),
    ],
)
def test_a_broken_event_array_is_unparseable(items: object, reason: str) -> None:
    with pytest.raises(UnparseableEnvelope, match=reason):
        parse(items)


def test_a_body_that_is_not_json_is_unparseable() -> None:
    with pytest.raises(UnparseableEnvelope, match="body is not JSON"):
        HubSpotSource(None, auth="none").parse(envelope(b"<html>"))

"""Aloware source: secret checks at the edge and `{event, body}` parsing, on captured samples."""

from __future__ import annotations

import base64
import copy
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.base import AuthFailed, BadPayload, WebhookRequest
from pulse.core.errors import UnparseableEnvelope
from pulse.core.model import Direction, IngestEnvelope, Kind, Source, SourceEvent

SAMPLES = Path(__file__).parents[1] / "specs" / "webhooks"
NOW_MS = 1_762_363_016_000


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"aloware-{name}.json").read_text())


def sample_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = sample(name)["body"]
    return body


def request(body: bytes = b"{}", **headers: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://pulse.example.com/webhooks/aloware",
        headers={k.lower().replace("_", "-"): v for k, v in headers.items()},
        body=body,
        now_ms=NOW_MS,
    )


def envelope(payload: object) -> IngestEnvelope:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return IngestEnvelope(
        request_id="req-1",
        source="aloware",
        received_at=datetime(2025, 11, 5, 18, 0, tzinfo=UTC),
        body=raw,
    )


def parse_one(payload: object) -> SourceEvent:
    (event,) = AlowareSource(auth="none", secret=None).parse(envelope(payload))
    return event


def with_fields(name: str, **fields: object) -> dict[str, Any]:
    payload = copy.deepcopy(sample_body(name))
    payload["body"].update(fields)
    return payload


def without_fields(name: str, *fields: str) -> dict[str, Any]:
    payload = copy.deepcopy(sample_body(name))
    for field in fields:
        payload["body"].pop(field, None)
    return payload


def basic(user_password: str) -> str:
    return "Basic " + base64.b64encode(user_password.encode()).decode()


# ---- authentication --------------------------------------------------------------------


@pytest.fixture
def token() -> str:
    return secrets.token_hex(16)


def test_the_configured_bearer_token_is_accepted(token: str) -> None:
    AlowareSource("bearer", token).authenticate(request(authorization=f"Bearer {token}"))


def test_the_bearer_scheme_is_case_insensitive(token: str) -> None:
    AlowareSource("bearer", token).authenticate(request(authorization=f"bearer {token}"))


def test_a_request_without_authorization_is_refused_as_missing(token: str) -> None:
    with pytest.raises(AuthFailed, match="missing Authorization header"):
        AlowareSource("bearer", token).authenticate(request())


def test_a_basic_header_is_refused_when_bearer_is_configured(token: str) -> None:
    with pytest.raises(AuthFailed, match="expected Bearer"):
        AlowareSource("bearer", token).authenticate(request(authorization=basic(f"u:{token}")))


def test_a_wrong_bearer_token_is_refused_without_echoing_either_token(token: str) -> None:
    wrong = secrets.token_hex(16)
    with pytest.raises(AuthFailed, match="bearer token does not match") as refused:
        AlowareSource("bearer", token).authenticate(request(authorization=f"Bearer {wrong}"))
    assert token not in str(refused.value)
    assert wrong not in str(refused.value)


def test_a_prefix_of_the_bearer_token_is_refused(token: str) -> None:
    with pytest.raises(AuthFailed):
        AlowareSource("bearer", token).authenticate(request(authorization=f"Bearer {token[:-1]}"))


def test_basic_credentials_equal_to_the_secret_are_accepted() -> None:
    secret = f"aloware:{secrets.token_hex(8)}"
    AlowareSource("basic", secret).authenticate(request(authorization=basic(secret)))


def test_wrong_basic_credentials_are_refused_without_echoing_the_secret() -> None:
    secret = f"aloware:{secrets.token_hex(8)}"
    with pytest.raises(AuthFailed, match="basic credentials do not match") as refused:
        AlowareSource("basic", secret).authenticate(request(authorization=basic("aloware:guess")))
    assert secret not in str(refused.value)


def test_basic_credentials_that_are_not_base64_are_refused() -> None:
    with pytest.raises(AuthFailed, match="not valid base64"):
        AlowareSource("basic", "u:p").authenticate(request(authorization="Basic not*base64"))


def test_a_bearer_header_is_refused_when_basic_is_configured() -> None:
    with pytest.raises(AuthFailed, match="expected Basic"):
        AlowareSource("basic", "u:p").authenticate(request(authorization="Bearer u:p"))


def test_auth_none_accepts_a_request_without_credentials() -> None:
    AlowareSource("none", None).authenticate(request())


def test_a_secret_is_required_unless_auth_is_none() -> None:
    with pytest.raises(ValueError, match="needs a secret"):
        AlowareSource("bearer", None)


def test_the_repr_never_shows_the_secret(token: str) -> None:
    assert token not in repr(AlowareSource("bearer", token))


# ---- edge shape check ------------------------------------------------------------------


def test_the_test_probe_is_a_valid_body() -> None:
    AlowareSource("none", None).check(request(json.dumps(sample_body("test-payload")).encode()))


def test_every_captured_webhook_passes_the_edge_check() -> None:
    source = AlowareSource("none", None)
    for name in ("call-disposed", "call-failed", "sms-outbound", "transcription-summarized"):
        source.check(request(json.dumps(sample_body(name)).encode()))


def test_a_body_that_is_not_json_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload, match="body is not JSON"):
        AlowareSource("none", None).check(request(b"event=call"))


def test_a_json_array_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload, match="body is not a JSON object"):
        AlowareSource("none", None).check(request(b"[{}]"))


# ---- parsing ---------------------------------------------------------------------------


def test_a_disposed_call_parses_into_an_outbound_final_call_by_its_agent() -> None:
    event = parse_one(sample_body("call-disposed"))
    assert event == SourceEvent(
        source=Source.ALOWARE,
        kind=Kind.CALL,
        event_name="OutboundPhoneCall-DispositionCompleted",
        object_id="54363660",
        occurred_at=datetime(2025, 11, 5, 17, 22, 28, tzinfo=UTC),
        direction=Direction.OUTBOUND,
        agent_id="42",
        disposition="completed",
        final=True,
        agent_leg_answered=True,
        duration_sec=44,
    )


def test_ids_and_codes_as_strings_or_numbers_give_the_same_event() -> None:
    as_strings = sample_body("call-disposed")
    as_numbers = copy.deepcopy(as_strings)
    for field in ("id", "user_id", "type", "direction", "disposition_status2", "duration"):
        as_numbers["body"][field] = int(as_strings["body"][field])
    assert parse_one(as_numbers) == parse_one(as_strings)


def test_naive_created_at_is_read_as_utc() -> None:
    occurred = parse_one(sample_body("sms-outbound")).occurred_at
    assert occurred == datetime(2025, 11, 5, 18, 1, 9, tzinfo=UTC)
    assert occurred is not None and occurred.utcoffset() is not None


def test_created_at_with_an_explicit_offset_is_converted_to_utc() -> None:
    event = parse_one(with_fields("sms-outbound", created_at="2025-11-05T13:01:09-05:00"))
    assert event.occurred_at == datetime(2025, 11, 5, 18, 1, 9, tzinfo=UTC)


def test_the_probe_parses_into_one_probe_event() -> None:
    (event,) = AlowareSource("none", None).parse(envelope(sample_body("test-payload")))
    assert event.kind is Kind.PROBE
    assert event.object_id is None


def test_a_transcription_summary_is_an_enrichment_event_without_an_id() -> None:
    event = parse_one(sample_body("transcription-summarized"))
    assert event.kind is Kind.ENRICHMENT
    assert event.object_id is None
    assert event.event_name == "transcription.call.summarized"


def test_an_outbound_sms_parses_into_a_final_outbound_sms_without_duration() -> None:
    event = parse_one(sample_body("sms-outbound"))
    assert (event.kind, event.direction, event.agent_id) == (Kind.SMS, Direction.OUTBOUND, "42")
    assert event.final and event.duration_sec is None


def test_an_initiated_call_is_not_final() -> None:
    event = parse_one(sample_body("call-initiated"))
    assert event.kind is Kind.CALL and not event.final and event.disposition is None


def test_a_failed_call_with_no_customer_leg_and_no_talk_time_was_never_answered() -> None:
    event = parse_one(sample_body("call-failed"))
    assert event.disposition == "failed" and event.final
    assert event.agent_leg_answered is False


def test_a_failed_call_with_a_customer_leg_was_answered_by_the_agent() -> None:
    event = parse_one(with_fields("call-failed", customer_leg_status=6))
    assert event.agent_leg_answered is True


def test_a_failed_call_with_talk_time_was_answered_by_the_agent() -> None:
    event = parse_one(with_fields("call-failed", talk_time="12"))
    assert event.agent_leg_answered is True


@pytest.mark.parametrize("no_user", [None, "", 0, "0", -1, "-1"])
def test_a_communication_without_a_user_has_no_agent(no_user: object) -> None:
    assert parse_one(with_fields("call-disposed", user_id=no_user)).agent_id is None


def test_the_disposition_is_lower_cased() -> None:
    event = parse_one(with_fields("call-disposed", disposition_status="Completed"))
    assert event.disposition == "completed"


def test_an_in_progress_disposition_is_not_final_whatever_the_event_name() -> None:
    event = parse_one(with_fields("call-disposed", disposition_status="in-progress"))
    assert not event.final


@pytest.mark.parametrize(
    ("code", "final"), [(1, False), ("1", False), (3, True), (4, True), (5, True)]
)
def test_without_a_status_text_the_disposition_code_decides_finality(
    code: object, final: bool
) -> None:
    payload = without_fields("call-disposed", "disposition_status")
    payload["body"]["disposition_status2"] = code
    assert parse_one(payload).final is final


def test_without_any_disposition_field_the_event_name_decides_finality() -> None:
    payload = without_fields("call-disposed", "disposition_status", "disposition_status2")
    assert parse_one(payload).final is True
    payload["event"] = "OutboundPhoneCall"
    assert parse_one(payload).final is False


def test_type_and_direction_win_over_the_event_name() -> None:
    payload = copy.deepcopy(sample_body("sms-outbound"))
    payload["event"] = "InboundPhoneCall-DispositionCompleted"
    event = parse_one(payload)
    assert (event.kind, event.direction) == (Kind.SMS, Direction.OUTBOUND)


@pytest.mark.parametrize(
    ("event_name", "kind", "direction"),
    [
        ("OutboundPhoneCall-DispositionCompleted", Kind.CALL, Direction.OUTBOUND),
        ("InboundPhoneCall-DispositionMissed", Kind.CALL, Direction.INBOUND),
        ("OutboundSMS-DispositionCompleted", Kind.SMS, Direction.OUTBOUND),
        ("InboundSMS-DispositionCompleted", Kind.SMS, Direction.INBOUND),
        ("contact.updated", Kind.UNKNOWN, Direction.UNKNOWN),
    ],
)
def test_the_event_name_fills_in_a_missing_type_and_direction(
    event_name: str, kind: Kind, direction: Direction
) -> None:
    payload = without_fields("call-disposed", "type", "direction")
    payload["event"] = event_name
    event = parse_one(payload)
    assert (event.kind, event.direction) == (kind, direction)


def test_an_unknown_communication_type_is_kept_as_unknown() -> None:
    assert parse_one(with_fields("call-disposed", type="7")).kind is Kind.UNKNOWN


# ---- envelopes that cannot be parsed are dead-lettered with a precise reason ----------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "body is not JSON"),
        ([1, 2], "body is not a JSON object but an array"),
        ({"event": "OutboundPhoneCall"}, "`body` is missing or null, not an object"),
        ({"event": "OutboundPhoneCall", "body": "54363660"}, "`body` is a string, not an object"),
        ({"event": 7, "body": {}}, "`event` is a number, not a string"),
    ],
)
def test_a_structurally_broken_envelope_is_unparseable(payload: object, reason: str) -> None:
    with pytest.raises(UnparseableEnvelope, match=reason):
        AlowareSource("none", None).parse(envelope(payload))


def test_a_communication_with_an_unparseable_created_at_is_unparseable() -> None:
    with pytest.raises(UnparseableEnvelope, match="created_at '05/11/2025' is not a timestamp"):
        parse_one(with_fields("call-disposed", created_at="05/11/2025"))


def test_a_communication_without_created_at_is_unparseable() -> None:
    with pytest.raises(UnparseableEnvelope, match="created_at is missing"):
        parse_one(without_fields("call-disposed", "created_at"))


def test_an_id_that_is_an_object_is_unparseable() -> None:
    with pytest.raises(UnparseableEnvelope, match="id is an object, not an id"):
        parse_one(with_fields("call-disposed", id={"value": 1}))


def test_a_type_code_that_is_not_a_number_is_unparseable() -> None:
    with pytest.raises(UnparseableEnvelope, match="type is 'call', not a whole number"):
        parse_one(with_fields("call-disposed", type="call"))


def test_a_failed_call_known_only_by_its_code_is_not_counted_by_default() -> None:
    import json
    from pathlib import Path

    from pulse.adapters_in.sources.aloware import AlowareSource
    from pulse.core.model import IngestEnvelope
    from pulse.core.rules import Policy, classify

    sample = json.loads(
        (Path(__file__).parents[1] / "specs" / "webhooks" / "aloware-call-failed.json").read_text()
    )["body"]
    del sample["body"]["disposition_status"]
    envelope = IngestEnvelope(
        "r1", "aloware", __import__("datetime").datetime.now(), json.dumps(sample).encode()
    )
    [event] = AlowareSource(auth="none", secret=None).parse(envelope)
    assert not classify(event).counts
    assert classify(event, Policy(count_failed_calls=True)).counts

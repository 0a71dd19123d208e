"""The webhook edge through the real aiohttp app: what it stores, what it refuses, how it answers."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from pulse.adapters_in.sources.base import WebhookRequest, WebhookSource
from pulse.core.model import IngestEnvelope, SourceEvent
from tests.integration.conftest import (
    HUBSPOT_SECRET,
    WEBHOOK_SAMPLES,
    AiohttpClient,
    Edge,
    sample,
    sample_body,
    signed_at,
    signed_hubspot_headers,
    start_edge,
)

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


async def assert_json_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    error = (await response.json())["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-Id"]
    return error


async def stored(edge: Edge) -> list[IngestEnvelope]:
    return [d.envelope for d in await edge.inbox.take(100, 0)]


# --- every captured webhook is stored ------------------------------------------------------------


def test_the_samples_cover_both_vendors() -> None:
    assert len(WEBHOOK_SAMPLES) >= 10
    assert {name.split("-")[0] for name in WEBHOOK_SAMPLES} == {"aloware", "hubspot"}


@pytest.mark.parametrize("name", WEBHOOK_SAMPLES)
async def test_every_captured_webhook_is_accepted_and_stored_as_sent(edge: Edge, name: str) -> None:
    response = await edge.post_sample(name)

    assert response.status == 202, await response.text()
    request_id = (await response.json())["request_id"]
    assert request_id == response.headers["X-Request-Id"]
    (envelope,) = await stored(edge)
    assert envelope.request_id == request_id
    assert envelope.source == sample(name)["_meta"]["provider"]
    assert envelope.body == sample_body(sample(name))
    assert envelope.received_at == edge.clock.now()
    assert envelope.headers["content-type"] == "application/json"
    assert "authorization" not in envelope.headers  # a secret never rests in the inbox


async def test_a_hubspot_envelope_keeps_the_signature_timestamp_it_was_checked_against(
    edge: Edge,
) -> None:
    await edge.post_sample("hubspot-v3-ticket-creation")

    (envelope,) = await stored(edge)
    assert envelope.headers["x-hubspot-request-timestamp"] == "1762362148000"
    assert "x-hubspot-signature-v3" not in envelope.headers


async def test_the_aloware_probe_is_answered_2xx(edge: Edge) -> None:
    response = await edge.client.post(
        "/webhooks/aloware", data=b'{"test_payload": true}', headers=edge.aloware_headers()
    )

    assert response.status == 202


# --- request ids --------------------------------------------------------------------------------


async def test_an_incoming_request_id_is_honoured_echoed_and_stored(edge: Edge) -> None:
    response = await edge.post_sample("aloware-call-disposed", **{"X-Request-Id": "abc-123.x:9"})

    assert response.headers["X-Request-Id"] == "abc-123.x:9"
    assert (await response.json())["request_id"] == "abc-123.x:9"
    assert [e.request_id for e in await stored(edge)] == ["abc-123.x:9"]


async def test_a_request_id_is_generated_when_none_is_sent(edge: Edge) -> None:
    first = await edge.post_sample("aloware-sms-outbound")
    second = await edge.post_sample("aloware-sms-outbound")

    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(GENERATED_ID.match(i) for i in ids)
    assert ids[0] != ids[1]
    assert sorted(e.request_id for e in await stored(edge)) == sorted(ids)


@pytest.mark.parametrize("unsafe", ["has spaces", "x" * 129, "semi;colon", "<script>"])
async def test_an_unsafe_request_id_is_replaced_by_a_generated_one(edge: Edge, unsafe: str) -> None:
    response = await edge.post_sample("aloware-sms-outbound", **{"X-Request-Id": unsafe})

    assert response.status == 202
    assert GENERATED_ID.match(response.headers["X-Request-Id"])


async def test_an_error_answer_echoes_the_incoming_request_id(edge: Edge) -> None:
    response = await edge.client.post(
        "/webhooks/aloware", data=b"{}", headers={"X-Request-Id": "trace-77"}
    )

    error = await assert_json_error(response, 401, "unauthorized")
    assert error["request_id"] == "trace-77"


# --- refusals: right status, JSON error, nothing stored --------------------------------------------


async def test_a_wrong_hubspot_signature_is_refused(edge: Edge) -> None:
    response = await edge.post_sample(
        "hubspot-v3-ticket-creation",
        **{"X-HubSpot-Signature-v3": "W1RYnCxRKxEXf3vK3qMgWCav29RmtxQaFEsTj/y/MO4="},
    )

    error = await assert_json_error(response, 401, "unauthorized")
    assert "signature" in error["message"]
    assert await edge.depth() == 0


async def test_a_hubspot_signature_from_another_secret_is_refused(edge: Edge) -> None:
    body = b'[{"subscriptionType":"ticket.creation","objectId":1}]'
    headers = signed_hubspot_headers(body, edge.clock.now(), secret="not-" + HUBSPOT_SECRET)

    response = await edge.client.post("/webhooks/hubspot", data=body, headers=headers)

    await assert_json_error(response, 401, "unauthorized")
    assert await edge.depth() == 0


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, milliseconds=1), False),
        (timedelta(hours=1), False),
        (timedelta(minutes=-6), False),  # from the future beyond the skew window
    ],
    ids=["exactly-5-min", "5-min-1-ms", "1-hour", "6-min-ahead"],
)
async def test_a_hubspot_timestamp_outside_five_minutes_is_refused(
    edge: Edge, age: timedelta, accepted: bool
) -> None:
    captured = sample("hubspot-v3-ticket-creation")
    signed = signed_at(captured) - timedelta(seconds=1)
    edge.clock.current = signed + age
    headers = {k: v for k, v in captured["headers"].items()}

    response = await edge.client.post(
        "/webhooks/hubspot", data=sample_body(captured), headers=headers
    )

    if accepted:
        assert response.status == 202
        assert await edge.depth() == 1
    else:
        error = await assert_json_error(response, 401, "unauthorized")
        assert "timestamp" in error["message"]
        assert await edge.depth() == 0


async def test_a_tampered_hubspot_body_is_refused(edge: Edge) -> None:
    captured = sample("hubspot-v3-email-object-creation")
    edge.clock.current = signed_at(captured)
    tampered = sample_body(captured).replace(b"88120045123", b"88120045124")

    response = await edge.client.post(
        "/webhooks/hubspot", data=tampered, headers=captured["headers"]
    )

    await assert_json_error(response, 401, "unauthorized")
    assert await edge.depth() == 0


async def test_a_hubspot_request_signed_for_another_url_is_refused(edge: Edge) -> None:
    captured = sample("hubspot-v3-ticket-creation")
    edge.clock.current = signed_at(captured)

    response = await edge.client.post(
        "/webhooks/hubspot?extra=1", data=sample_body(captured), headers=captured["headers"]
    )

    await assert_json_error(response, 401, "unauthorized")
    assert await edge.depth() == 0


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("aloware-sms-outbound", {"Content-Type": "application/json"}),
        ("aloware-sms-outbound", {"Authorization": "Basic eDp5"}),
        ("aloware-sms-outbound", {"Authorization": "Bearer "}),
        ("hubspot-v3-ticket-creation", {"Content-Type": "application/json"}),
    ],
    ids=["aloware-no-header", "aloware-wrong-scheme", "aloware-empty-token", "hubspot-unsigned"],
)
async def test_missing_credentials_are_refused(
    edge: Edge, name: str, headers: dict[str, str]
) -> None:
    provider = sample(name)["_meta"]["provider"]

    response = await edge.client.post(
        f"/webhooks/{provider}", data=sample_body(sample(name)), headers=headers
    )

    await assert_json_error(response, 401, "unauthorized")
    assert await edge.depth() == 0


async def test_a_wrong_bearer_token_is_refused_without_echoing_it(edge: Edge) -> None:
    wrong = edge.aloware_token[:-1] + ("0" if edge.aloware_token[-1] != "0" else "1")

    response = await edge.post_sample("aloware-call-disposed", Authorization=f"Bearer {wrong}")

    error = await assert_json_error(response, 401, "unauthorized")
    assert wrong not in error["message"] and edge.aloware_token not in error["message"]
    assert await edge.depth() == 0


async def test_a_body_over_the_limit_is_refused_with_413(edge: Edge) -> None:
    oversized = b'{"event": "x", "body": {"pad": "' + b"a" * (1024 * 1024) + b'"}}'

    response = await edge.client.post(
        "/webhooks/aloware", data=oversized, headers=edge.aloware_headers()
    )

    error = await assert_json_error(response, 413, "payload_too_large")
    assert "1048576" in error["message"]
    assert await edge.depth() == 0


async def test_a_body_that_is_not_json_is_refused_with_400(edge: Edge) -> None:
    response = await edge.client.post(
        "/webhooks/aloware", data=b"event=call&id=1", headers=edge.aloware_headers()
    )

    error = await assert_json_error(response, 400, "bad_payload")
    assert "JSON" in error["message"]
    assert await edge.depth() == 0


async def test_an_empty_hubspot_event_array_is_refused_with_400(edge: Edge) -> None:
    response = await edge.post_hubspot([])

    error = await assert_json_error(response, 400, "bad_payload")
    assert "empty" in error["message"]
    assert await edge.depth() == 0


async def test_more_than_100_hubspot_events_are_refused_with_400(edge: Edge) -> None:
    events = [{"subscriptionType": "ticket.creation", "objectId": i} for i in range(101)]

    response = await edge.post_hubspot(events)

    await assert_json_error(response, 400, "bad_payload")
    assert await edge.depth() == 0


async def test_an_unknown_source_is_404_and_names_the_known_ones(edge: Edge) -> None:
    response = await edge.client.post(
        "/webhooks/zendesk", data=b"{}", headers=edge.aloware_headers()
    )

    error = await assert_json_error(response, 404, "not_found")
    assert "aloware" in error["message"] and "hubspot" in error["message"]
    assert await edge.depth() == 0


async def test_an_unknown_route_is_a_json_404(edge: Edge) -> None:
    response = await edge.client.get("/no/such/route")

    await assert_json_error(response, 404, "not_found")


async def test_a_get_on_the_webhook_route_is_a_json_405(edge: Edge) -> None:
    response = await edge.client.get("/webhooks/aloware")

    await assert_json_error(response, 405, "method_not_allowed")


# --- a crash in a handler ------------------------------------------------------------------------


class CrashingSource:
    """A source with a bug: authenticate blows up."""

    name = "crashing"
    kept_headers: tuple[str, ...] = ()

    def authenticate(self, request: WebhookRequest) -> None:
        raise RuntimeError("bug in authenticate")

    def check(self, request: WebhookRequest) -> None:
        return None

    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        return []


async def test_a_handler_crash_is_a_json_500_and_the_app_keeps_serving(
    aiohttp_client: AiohttpClient,
    webhook_sources: dict[str, WebhookSource],
    inbox: Any,
    edge_clock: Any,
    aloware_token: str,
) -> None:
    sources = {**webhook_sources, "crashing": CrashingSource()}
    edge = await start_edge(aiohttp_client, sources, inbox, edge_clock, aloware_token)

    crashed = await edge.client.post("/webhooks/crashing", data=b"{}")
    error = await assert_json_error(crashed, 500, "internal_error")
    assert "bug in authenticate" not in error["message"]  # internals stay in the logs
    assert await edge.depth() == 0

    after = await edge.post_sample("aloware-call-disposed")
    assert after.status == 202
    assert await edge.depth() == 1
    assert (await edge.client.get("/healthz")).status == 200


# --- health ---------------------------------------------------------------------------------------


async def test_health_routes_answer_while_the_inbox_is_up(edge: Edge) -> None:
    alive = await edge.client.get("/healthz")
    ready = await edge.client.get("/readyz")

    assert alive.status == 200
    assert ready.status == 200
    assert json.loads(await ready.text()) == {"ok": ["inbox"], "failing": {}}


async def test_rejections_and_storage_are_counted_in_metrics(edge: Edge) -> None:
    await edge.post_sample("aloware-call-disposed")
    await edge.client.post("/webhooks/aloware", data=b"{}")

    text = await (await edge.client.get("/metrics")).text()

    assert 'pulse_webhooks_received_total{source="aloware"} 1' in text
    assert 'pulse_webhooks_rejected_total{code="unauthorized",source="aloware"} 1' in text

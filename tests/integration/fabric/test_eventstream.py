"""The Eventstream sink against the Event Hubs emulator: SAS tokens, batches inside 1 MB, and
the faults of DESIGN §4 as Event Hubs shows them."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from pulse.adapters_out.fabric.errors import FabricAccessDenied
from pulse.adapters_out.fabric.eventstream import EventstreamSink
from pulse.adapters_out.fabric.sas import (
    EventHubTarget,
    SasTokens,
    parse_connection_string,
    sas_token,
)
from pulse.core.errors import SinkTransientError
from tests.contract.test_sink_contract import call
from tests.emulators.eventhubs import EventHubsEmulator
from tests.support.fabric.harness import (
    eventstream_destination,
    eventstream_settings,
    eventstream_sink,
)

KAT_URI = "https://pulse-test.servicebus.windows.net/es_pulse"
KAT_KEY = "c2VjcmV0LWtleS1mb3Ita2F0LW9ubHk="  # a made-up key, for this known answer only
KAT_EXPIRY = 1767225600  # 2026-01-01T00:00:00Z


def test_the_sas_token_matches_the_documented_algorithm_known_answer() -> None:
    # Expected value computed apart from this code, with openssl:
    #   printf 'https%3A%2F%2Fpulse-test.servicebus.windows.net%2Fes_pulse\n1767225600' |
    #     openssl dgst -sha256 -hmac "$KAT_KEY" -binary | base64
    expected = (
        "SharedAccessSignature sr=https%3A%2F%2Fpulse-test.servicebus.windows.net%2Fes_pulse"
        "&sig=fUkx2DKvYmMWjE1YKs04RcwHbc95NeKuGnAhqedSeZ0%3D&se=1767225600&skn=key_pulse"
    )

    assert sas_token(KAT_URI, "key_pulse", KAT_KEY, KAT_EXPIRY) == expected


def test_the_connection_string_is_read_and_its_key_never_shown() -> None:
    target = parse_connection_string(
        f"Endpoint=sb://Pulse-Test.servicebus.windows.net/;SharedAccessKeyName=key_pulse;"
        f"SharedAccessKey={KAT_KEY};EntityPath=es_pulse"
    )

    assert target.send_url == "https://pulse-test.servicebus.windows.net/es_pulse/messages"
    assert KAT_KEY not in repr(target)
    with pytest.raises(ValueError, match="lacks SharedAccessKey, EntityPath") as caught:
        parse_connection_string("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k")
    assert KAT_KEY not in str(caught.value)


def test_tokens_are_renewed_before_they_expire_not_at_every_call() -> None:
    now = [1_000_000.0]
    target = EventHubTarget("pulse-test.servicebus.windows.net", "key_pulse", KAT_KEY, "es_pulse")
    tokens = SasTokens(target, ttl_sec=3_600, renew_before_sec=300, clock=lambda: now[0])

    first = tokens.token()
    now[0] += 3_299
    assert tokens.token() == first and tokens.issued == 1
    now[0] += 1  # 300 s left: renew
    assert tokens.token() != first and tokens.issued == 2
    assert tokens.expiry == int(now[0] + 3_600)


async def test_the_emulator_refuses_expired_tampered_and_misaddressed_tokens() -> None:
    hub = EventHubsEmulator()
    resource = f"https://{hub.namespace}/{hub.entity}"
    later = int(time.time()) + 600
    good = sas_token(resource, hub.key_name, hub.key, later)

    assert hub.check_sas(good, resource) is None
    assert "ExpiredToken" in str(
        hub.check_sas(sas_token(resource, hub.key_name, hub.key, int(time.time()) - 1), resource)
    )
    assert "InvalidSignature" in str(
        hub.check_sas(good.replace(f"se={later}", f"se={later + 1}"), resource)
    )
    assert "InvalidSignature" in str(
        hub.check_sas(sas_token(resource, hub.key_name, "another-key", later), resource)
    )
    assert "unknown key name" in str(
        hub.check_sas(sas_token(resource, "other", hub.key, later), resource)
    )
    assert "audience" in str(
        hub.check_sas(
            sas_token(f"https://{hub.namespace}/other", hub.key_name, hub.key, later), resource
        )
    )


async def test_a_batch_goes_out_as_servicebus_json_within_one_megabyte_tagged_with_its_table() -> (
    None
):
    async with EventHubsEmulator() as hub, eventstream_sink(hub) as sink:
        await sink.append([call(n) for n in range(8_000)])

        sizes = hub.counters.batch_sizes
        assert len(sizes) >= 3 and max(sizes) <= 1_000_000  # FABRIC__EVENTSTREAM_MAX_REQUEST_BYTES
        facts = eventstream_destination(hub.events, "FactEvent")
        assert sorted(f["EventKey"] for f in facts) == sorted(f"aloware:{n}" for n in range(8_000))
        assert facts[0]["OccurredAtUtc"].endswith("Z")
        assert hub.counters.rejected_auth == []


async def test_the_emulator_refuses_a_batch_sent_as_plain_json() -> None:
    async with EventHubsEmulator() as hub:
        token = sas_token(
            f"https://{hub.namespace}/{hub.entity}", hub.key_name, hub.key, int(time.time()) + 60
        )
        async with httpx.AsyncClient(transport=hub.transport()) as http:
            response = await http.post(
                f"https://{hub.namespace}/{hub.entity}/messages",
                content=b'[{"Body": "{}"}]',
                headers={"Authorization": token, "Content-Type": "application/json"},
            )

        assert response.status_code == 400
        assert "application/vnd.microsoft.servicebus.json" in response.text
        assert hub.events == []


async def test_a_wrong_key_waits_for_an_operator_with_a_sentence_saying_where_to_look() -> None:
    async with EventHubsEmulator() as hub:
        wrong = hub.connection_string.replace(hub.key, "d3Jvbmcta2V5")
        settings = eventstream_settings(hub, eventstream_connection_string=SecretStr(wrong))
        sink = EventstreamSink.from_config(settings.eventstream_config(), transport=hub.transport())
        try:
            with pytest.raises(FabricAccessDenied, match="Keys tab") as caught:
                await sink.append([call(1)])
        finally:
            await sink.close()

        assert isinstance(caught.value, SinkTransientError)  # redelivered later, not lost
        assert "d3Jvbmcta2V5" not in str(caught.value)
        assert hub.events == [] and len(hub.counters.rejected_auth) == 2  # signed anew once


async def test_a_token_the_service_calls_expired_is_signed_anew_once() -> None:
    async with EventHubsEmulator() as hub, eventstream_sink(hub) as sink:
        stale = sas_token(sink.target.resource_uri, hub.key_name, hub.key, int(time.time()) - 5)
        sink.tokens._token, sink.tokens.expiry = stale, int(time.time()) + 3_600  # clock skew

        await sink.append([call(1)])

        assert [why.split(":")[0] for why in hub.counters.rejected_auth] == ["ExpiredToken"]
        assert sink.tokens.issued == 1
        assert len(hub.events) == 1


async def test_an_oversize_batch_is_split_not_rejected() -> None:
    async with EventHubsEmulator() as hub, eventstream_sink(hub) as sink:
        hub.faults.max_batch_bytes = 50_000  # a smaller tier than the setting assumed

        await sink.append([call(n) for n in range(1_000)])

        assert hub.counters.too_large >= 1 and sink.sender.stats.splits >= 1
        assert len({e.body["EventKey"] for e in hub.events}) == 1_000


async def test_server_busy_and_5xx_are_waited_out() -> None:
    async with EventHubsEmulator() as hub, eventstream_sink(hub) as sink:
        hub.faults.throttle, hub.faults.retry_after, hub.faults.errors_5xx = 2, 0, 2

        await sink.append([call(1), call(2)])

        assert sink.sender.stats.throttled == 2 and sink.sender.stats.unavailable == 2
        assert sorted(e.body["EventKey"] for e in hub.events) == ["aloware:1", "aloware:2"]


async def test_a_connection_dropped_after_enqueue_repeats_events_the_reader_counts_once() -> None:
    async with EventHubsEmulator() as hub, eventstream_sink(hub) as sink:
        hub.faults.drop_after = 1

        await sink.append([call(1), call(2)])

        keys = [e.body["EventKey"] for e in hub.events]
        assert len(keys) == 4 and set(keys) == {"aloware:1", "aloware:2"}

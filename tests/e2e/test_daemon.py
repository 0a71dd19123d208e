"""End to end: the real `pulse serve` subprocess, real HTTP, real signatures, SIGTERM mid-load."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp
import pytest

from tests.support.serve import (
    PUBLIC_BASE_URL,
    STOP_TIMEOUT_SEC,
    Daemon,
    Pulse,
    hubspot_v3,
    post,
    sample,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def aloware_call(communication_id: int) -> bytes:
    payload = sample("aloware-call-disposed")["body"]
    payload["body"]["id"] = str(communication_id)
    return json.dumps(payload).encode()


# --- the tests ---------------------------------------------------------------------------------


def test_every_sample_posted_to_the_daemon_shows_up_in_the_report(pulse: Pulse) -> None:
    daemon = pulse.serve("serve.log")
    aloware = {
        "Authorization": f"Bearer {pulse.aloware_secret}",
        "Content-Type": "application/json",
    }
    for name in (
        "aloware-test-payload",
        "aloware-call-initiated",
        "aloware-call-disposed",
        "aloware-call-failed",
        "aloware-inbound-call-missed",
        "aloware-sms-outbound",
        "aloware-sms-inbound",
        "aloware-transcription-summarized",
    ):
        status, answer = post(
            daemon.url + "/webhooks/aloware", json.dumps(sample(name)["body"]).encode(), aloware
        )
        assert (status, set(answer)) == (202, {"request_id"}), (name, answer)
    for name in ("hubspot-v3-ticket-creation", "hubspot-v3-email-object-creation"):
        raw = sample(name)["raw_body"].encode()
        timestamp = str(int(time.time() * 1000))
        signature = hubspot_v3(
            pulse.hubspot_secret, "POST", PUBLIC_BASE_URL + "/webhooks/hubspot", raw, timestamp
        )
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        status, answer = post(daemon.url + "/webhooks/hubspot", raw, headers)
        assert status == 202, (name, answer)

    pulse.wait_drained()
    counts: dict[tuple[str, str], int] = {}

    def counted() -> bool:
        rows = pulse.report("2025-11-05")
        counts.clear()
        counts.update({(r["AgentKey"], r["MetricID"]): r["Count"] for r in rows if r["Count"]})
        return len(counts) >= 4

    wait_for(counted, 10, "four counted metrics in `pulse report`")
    assert counts == {
        ("42", "CALLS"): 1,
        ("42", "TEXTS"): 1,
        ("7", "EMAILS"): 1,
        ("7", "CASES"): 1,
    }
    assert daemon.stop() == 0
    assert "shutdown:" in daemon.log()


LOAD_EVENTS = 2_000
LOAD_CONNECTIONS = 64
SIGTERM_AFTER_ACKS = LOAD_EVENTS // 4


async def _load_then_sigterm(
    daemon: Daemon, secret: str, sig: signal.Signals = signal.SIGTERM
) -> tuple[set[str], int]:
    """Post LOAD_EVENTS distinct calls; send `sig` once a quarter are acknowledged.

    Returns the EventKeys answered 202 and how many requests got any other answer or none."""
    acked: set[str] = set()
    quarter = asyncio.Event()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=LOAD_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=15)

    async def one(session: aiohttp.ClientSession, communication_id: int) -> None:
        try:
            async with session.post(
                daemon.url + "/webhooks/aloware",
                data=aloware_call(communication_id),
                headers=headers,
            ) as response:
                await response.read()
                if response.status == 202:
                    acked.add(f"aloware:{communication_id}")
                    if len(acked) >= SIGTERM_AFTER_ACKS:
                        quarter.set()
        except (aiohttp.ClientError, TimeoutError):
            pass  # refused or cut off by the shutdown: not acknowledged, so not promised

    async def terminate() -> None:
        await asyncio.wait_for(quarter.wait(), 30)
        daemon.proc.send_signal(sig)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        base = 700_000_000
        killer = asyncio.create_task(terminate())
        await asyncio.gather(*(one(session, base + i) for i in range(LOAD_EVENTS)))
        await killer
    return acked, LOAD_EVENTS - len(acked)


def test_sigterm_mid_load_loses_and_doubles_no_acknowledged_event(pulse: Pulse) -> None:
    first = pulse.serve("serve-1.log")
    acked, refused = asyncio.run(_load_then_sigterm(first, pulse.aloware_secret))
    assert acked and refused, "SIGTERM should land while requests are in flight"

    assert first.proc.wait(timeout=STOP_TIMEOUT_SEC) == 0, first.log()
    assert "shutdown:" in first.log()

    second = pulse.serve("serve-2.log")
    pulse.wait_drained()
    total, keys = pulse.stored_keys()
    assert total == len(set(keys)), "an EventKey is stored twice"
    missing = acked - set(keys)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert all(k.startswith("aloware:7") for k in keys)
    assert second.stop() == 0


def test_sigkill_mid_load_loses_and_doubles_no_acknowledged_event(pulse: Pulse) -> None:
    """kill -9 while requests, takes and acks are in flight: every 202 was fsync'd before it
    was sent, and what the dead process had taken or acked (takes and acks are not synced of
    their own) is delivered again and counted once."""
    first = pulse.serve("serve-1.log")
    acked, refused = asyncio.run(_load_then_sigterm(first, pulse.aloware_secret, signal.SIGKILL))
    assert acked and refused, "SIGKILL should land while requests are in flight"
    assert first.proc.wait(timeout=STOP_TIMEOUT_SEC) == -signal.SIGKILL

    second = pulse.serve("serve-2.log")
    pulse.wait_drained()
    total, keys = pulse.stored_keys()
    assert total == len(set(keys)), "an EventKey is stored twice"
    missing = acked - set(keys)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert second.stop() == 0

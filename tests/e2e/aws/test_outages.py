"""Outages hold, they never park (DESIGN §2 "Poison, outages and backpressure"), through the
whole production stack: two real `pulse serve` replicas on moto's SQS and DynamoDB (through a
fault proxy), SINK=powerbi against the Power BI emulator, events delivered 1-6 times.

One run, one fault after another, on one queue:
1. a 90 s Power BI 5xx outage, one replica with POWERBI__APPEND_TIMEOUT_SEC=10 (which parked
   527 of 600 events in the DLQ before breakers) and one with the defaults, and one replica
   SIGKILLed during the outage and restarted;
2. a 429 storm, then every Entra ID token expired;
3. DynamoDB throttling every call for 60 s;
4. poison mixed into the traffic.
Afterwards every 202-acknowledged event is counted once (its EventKey in the dataset), the
SQS DLQ holds only the poison, and Pulse caused no 429."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.aws.replicas import Replica, SharedStores, deliveries, post_all, wait_async
from tests.support.local import disposed_call
from tests.support.powerbi.daemon import daemon_settings, ensure_with
from tests.support.powerbi.serve import EMULATOR_URL, TIME_FACTOR, TIME_ORIGIN

pytestmark = pytest.mark.slow

OUTAGE_SEC = 90.0
THROTTLE_SEC = 60.0
SETTLE_SEC = 120.0
POISON = [
    disposed_call(call_id, **fields)
    for call_id, fields in (
        ("\ud800", {}),
        ("9001", {"duration": 1e19}),
        ("9002", {"created_at": "0001-01-01 00:00:00"}),
    )
]


@pytest.fixture
async def emulator() -> AsyncIterator[PowerBIEmulator]:
    async with PowerBIEmulator(timebase=ScaledTime(1.0)) as emu:
        yield emu


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(moto_url)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.close()


@pytest.fixture
def replicas() -> Iterable[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.kill_all()


def powerbi_env(emulator: PowerBIEmulator, time_origin: float) -> dict[str, str]:
    return {
        "SINK": "powerbi",
        "POWERBI__TENANT_ID": emulator.tenant_id,
        "POWERBI__CLIENT_ID": emulator.client_id,
        "POWERBI__CLIENT_SECRET": emulator.client_secret,
        "POWERBI__WORKSPACE_ID": emulator.workspace_id,
        "POWERBI__API_BASE_URL": emulator.api_base_url,
        "POWERBI__TIMEOUT_SEC": "10",
        "SQS_MAX_RECEIVE_COUNT": "100",  # the product's default: a crash backstop
        "INBOX_VISIBILITY_SEC": "10",
        EMULATOR_URL: emulator.url,
        TIME_FACTOR: "1",
        TIME_ORIGIN: repr(time_origin),
    }


async def post_raw(url: str, secret: str, bodies: list[bytes]) -> list[int]:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        statuses = []
        for body in bodies:
            async with http.post(f"{url}/webhooks/aloware", data=body, headers=headers) as answer:
                statuses.append(answer.status)
        return statuses


async def test_outages_throttling_and_a_kill_lose_nothing_and_park_nothing(
    tmp_path: Path,
    moto_url: str,
    proxy: FaultProxy,
    emulator: PowerBIEmulator,
    replicas: list[Replica],
) -> None:
    assert isinstance(emulator.time, ScaledTime)
    await ensure_with(emulator, daemon_settings(emulator, tmp_path / "ensure"))
    direct = SharedStores(moto_url)
    direct.provision(tmp_path / "infra")  # blocking: straight to moto, not through our proxy
    stores = replace(direct, endpoint=proxy.url)
    env = powerbi_env(emulator, emulator.time.origin)
    module = "tests.support.powerbi.serve"
    fast = Replica("fast", tmp_path / "fast", stores, {**env, "POWERBI__APPEND_TIMEOUT_SEC": "10"})
    default = Replica("default", tmp_path / "default", stores, env)
    replicas += [fast, default]
    for replica in replicas:
        replica.launch(module)
    await asyncio.gather(*(r.wait_ready() for r in replicas))
    rng = random.Random(11)
    expected: set[str] = set()

    async def send(ids: range) -> None:
        plan = deliveries(list(ids), 2, 6, rng)
        failed = await post_all([r.url for r in replicas], plan, stores.secret, concurrency=8)
        assert failed == []  # every delivery answered 202, outages or not
        expected.update(f"aloware:{n}" for n in ids)

    # 1. A 90 s outage with both append timeouts, and a replica killed in the middle of it.
    emulator.faults.outage_until = emulator.time.monotonic() + OUTAGE_SEC
    started = time.monotonic()
    await send(range(1, 201))
    await asyncio.sleep(max(0.0, 40.0 - (time.monotonic() - started)))
    fast.kill_all()
    fast.launch(module)
    await fast.wait_ready()
    await send(range(201, 301))
    await asyncio.sleep(max(0.0, OUTAGE_SEC - (time.monotonic() - started)))
    await settled(emulator, expected, "after the outage")
    assert emulator.counters.injected_5xx > 0

    # 2. A 429 storm, then every token expired.
    emulator.faults.storm_429 = 40
    await send(range(301, 401))
    emulator.aad.expire_all()
    await send(range(401, 451))
    await settled(emulator, expected, "after the 429 storm and the expired tokens")

    # 3. DynamoDB throttles every call for 60 s; the edge keeps storing (SQS is fine).
    proxy.throttle_for(THROTTLE_SEC)
    await send(range(451, 551))
    await asyncio.sleep(THROTTLE_SEC / 2)
    assert proxy.throttled > 0
    await settled(emulator, expected, "after DynamoDB throttling")

    # 4. Poison among valid traffic: dead-lettered with a reason, never blocking the rest.
    statuses = await post_raw(default.url, stores.secret, [json.dumps(p).encode() for p in POISON])
    assert statuses == [202] * len(POISON)
    await send(range(551, 601))
    await settled(emulator, expected, "after the poison")

    async with stores.depth_probe() as depth:

        async def only_poison_left() -> bool:
            queued, dead = await depth()
            return queued == 0 and dead == len(POISON)

        await wait_async(only_poison_left, 60, "the queue to empty, only poison in the DLQ")
    counted = Counter(r["EventKey"] for r in emulator.rows("FactEvent"))
    assert set(counted) == expected
    assert emulator.counters.throttled_by_limits == 0  # Pulse caused no 429
    for replica in replicas:
        assert "Traceback" not in replica.log() or "SIGKILL" in replica.log()


async def settled(emulator: PowerBIEmulator, expected: set[str], when: str) -> None:
    async def all_counted() -> bool:
        keys = {r["EventKey"] for r in emulator.rows("FactEvent")}
        return expected <= keys

    await wait_async(all_counted, SETTLE_SEC, f"every acknowledged event counted {when}")

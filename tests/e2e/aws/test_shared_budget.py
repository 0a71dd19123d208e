"""One Power BI budget across replicas (DESIGN §4): three real `pulse serve` replicas on one
moto table and queue, SINK=powerbi on the emulator, POWERBI__LARGE_TABLE_ROWS lowered so the
hourly regime (120 PostRows an hour) is reached within the test, on a clock compressed 240×
(an emulated hour is 15 real seconds). Each replica's own limiter would allow 120 an hour, so
together, unshared, they would spend three times the budget; the emulator counts every
PostRows across them and answers 429 past any limit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import Limits, PowerBIEmulator
from tests.support.aws.fault_scenario import powerbi_env
from tests.support.aws.replicas import Replica, SharedStores, deliveries, post_all, wait_async
from tests.support.powerbi.daemon import daemon_settings, ensure_with

pytestmark = pytest.mark.slow

FACTOR = 240.0  # an emulated hour is 15 real seconds: 120 PostRows an hour is 8 a second
LARGE_TABLE_ROWS = 150
PER_SECOND = 30  # deliveries a second across the replicas: every replica always has rows
SECONDS = 40  # 2 2/3 emulated hours, all but the first minutes past the switch


@pytest.fixture
async def emulator() -> AsyncIterator[PowerBIEmulator]:
    limits = Limits(large_table_rows=LARGE_TABLE_ROWS)
    async with PowerBIEmulator(timebase=ScaledTime(FACTOR), limits=limits) as emu:
        yield emu


async def test_three_replicas_together_stay_inside_the_hourly_budget(
    tmp_path: Path, moto_url: str, emulator: PowerBIEmulator, replicas: list[Replica]
) -> None:
    assert isinstance(emulator.time, ScaledTime)
    await ensure_with(emulator, daemon_settings(emulator, tmp_path / "ensure"))
    stores = SharedStores(moto_url)
    stores.provision(tmp_path / "infra")
    env = {
        **powerbi_env(emulator),
        "POWERBI__LARGE_TABLE_ROWS": str(LARGE_TABLE_ROWS),
        # The append timeout runs on the compressed clock: 1,200 emulated seconds are 5 real.
        "POWERBI__APPEND_TIMEOUT_SEC": "1200",
        "LEDGER_LEASE_SEC": "3000",
    }
    replicas += [Replica(f"r{i}", tmp_path / f"r{i}", stores, env) for i in range(3)]
    for replica in replicas:
        replica.launch("tests.support.powerbi.serve")
    await asyncio.gather(*(r.wait_ready() for r in replicas))

    rng = random.Random(5)
    urls = [r.url for r in replicas]
    for second in range(SECONDS):
        ids = list(range(second * PER_SECOND + 1, (second + 1) * PER_SECOND + 1))
        started = asyncio.get_running_loop().time()
        assert await post_all(urls, deliveries(ids, len(urls), 1, rng), stores.secret) == []
        await asyncio.sleep(max(0.0, 1.0 - (asyncio.get_running_loop().time() - started)))
    events = SECONDS * PER_SECOND

    async def all_counted() -> bool:
        return len({r["EventKey"] for r in emulator.rows("FactEvent")}) == events

    try:
        # 240 s, as the fault proofs: on a loaded 2-core run the replicas' batches took 15 s
        await wait_async(all_counted, 240, "every event counted")
    except AssertionError:
        counted = {r["EventKey"] for r in emulator.rows("FactEvent")}
        missing = [f"aloware:{n}" for n in range(1, events + 1) if f"aloware:{n}" not in counted]
        ledger = await stores.ledger_items(missing[:10])
        async with stores.depth_probe() as depth:
            queued, dead = await depth()
        raise AssertionError(
            f"{len(missing)} of {events} not counted, e.g. {missing[:10]}; their ledger items: "
            f"{ledger}; {queued} queued, {dead} dead-lettered"
        ) from None
    counters = emulator.counters
    assert counters.throttled_by_limits == 0, counters.throttled_by_limit  # Pulse caused no 429
    # The hourly regime was reached early and held for the rest (16 429s without the shared
    # budget, in this same scenario, on 2026-12-01).
    assert len(emulator.rows("FactEvent")) >= LARGE_TABLE_ROWS
    assert counters.accepted_requests >= 40

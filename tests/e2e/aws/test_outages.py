"""Outages hold, they never park (DESIGN §2 "Poison, outages and backpressure"), through the
whole production stack (tests/support/aws/fault_scenario.py): two real `pulse serve` replicas
on moto's SQS and DynamoDB, SINK=powerbi on the Power BI emulator, events delivered 1-6 times,
and one fault after another: a 90 s Power BI 5xx outage with a replica SIGKILLed in it (one
replica with POWERBI__APPEND_TIMEOUT_SEC=10, which parked 527 of 600 events in the DLQ before
breakers, one with the defaults), a 429 storm then expired tokens, 60 s of DynamoDB throttling,
poison among valid events. Every acknowledged event is counted, the DLQ gains only the poison,
Pulse causes no 429, and the queue drains."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.aws.fault_scenario import POISON, FaultRun
from tests.support.aws.replicas import wait_async

pytestmark = pytest.mark.slow


@pytest.fixture
async def run(tmp_path: Path, moto_url: str) -> AsyncIterator[FaultRun]:
    proxy = FaultProxy(moto_url)
    await proxy.start()
    async with PowerBIEmulator(timebase=ScaledTime(1.0)) as emulator:
        faults = FaultRun(tmp_path, moto_url, proxy, emulator)
        try:
            await faults.start()
            yield faults
        finally:
            faults.stop()
            await proxy.close()


async def drained(run: FaultRun, dead: int) -> None:
    seen: list[tuple[int, int]] = []

    async def settled() -> bool:
        seen.append(await run.depth())
        return seen[-1] == (0, dead)

    try:
        await wait_async(settled, 150, f"the queue to drain, {dead} poison in the DLQ")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (queued, dead) last seen: {seen[-3:]}") from None


async def test_a_power_bi_outage_with_a_replica_killed_in_it_loses_and_parks_nothing(
    run: FaultRun,
) -> None:
    row = await run.outage_with_a_kill()

    assert (row.lost, row.counted, row.dead_lettered, row.caused_429) == (0, row.events, 0, 0)
    assert run.emulator.counters.injected_5xx > 0
    ready, metrics = run.during_outage  # backpressured, not unhealthy: stay in the pool
    assert ready == 200
    assert 'pulse_breaker_state{dependency="sink",state="closed"} 0' in metrics  # open/probing
    await drained(run, 0)


async def test_429s_expired_tokens_dynamodb_throttling_and_poison_lose_and_park_nothing(
    run: FaultRun,
) -> None:
    transient = [await run.storm_and_expired_tokens(), await run.dynamodb_throttling()]
    poison = await run.poison()

    for row in [*transient, poison]:
        assert (row.lost, row.counted, row.caused_429) == (0, row.events, 0), row
    assert [row.dead_lettered for row in transient] == [0, 0]
    assert poison.dead_lettered == len(POISON)
    assert run.proxy.throttled > 0
    await drained(run, len(POISON))

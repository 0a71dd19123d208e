"""Faults mid-run (429 storm, 5xx outage, lost connections, expired token, slow answers):
afterwards every accepted event is in the emulator once by DISTINCT EventKey, and Pulse caused no 429."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pulse.adapters_out.powerbi.sink import PowerBISink
from pulse.core.errors import SinkTransientError
from pulse.core.model import FactEvent
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.powerbi.fixtures import facts
from tests.support.powerbi.harness import powerbi_sink


@dataclass
class Delivery:
    """What the ingest path would see: batches accepted, and transient failures retried."""

    accepted: set[str] = field(default_factory=set)
    transient_failures: int = 0


async def deliver(
    sink: PowerBISink,
    emulator: PowerBIEmulator,
    batches: list[list[FactEvent]],
    *,
    stagger_sec: float = 0.0,
    retry_sec: float = 5.0,
    max_attempts: int = 60,
    during: Callable[[int], None] | None = None,
) -> Delivery:
    """Each batch is one worker's append; a transient error waits and retries, like an inbox
    redelivery (bounded). `during(i)` runs before batch i starts (to turn fault knobs)."""
    outcome = Delivery()

    async def worker(i: int, batch: list[FactEvent]) -> None:
        await emulator.time.sleep(i * stagger_sec)
        if during is not None:
            during(i)
        for _ in range(max_attempts):
            try:
                await sink.append(batch)
            except SinkTransientError:
                outcome.transient_failures += 1
                await emulator.time.sleep(retry_sec)
            else:
                outcome.accepted.update(f.EventKey for f in batch)
                return
        raise AssertionError(f"batch {i} never accepted")

    await asyncio.wait_for(
        asyncio.gather(*(worker(i, b) for i, b in enumerate(batches))), timeout=60
    )
    return outcome


def batches(count: int, size: int = 100) -> list[list[FactEvent]]:
    return [facts(n * size, size) for n in range(count)]


def assert_each_accepted_event_once(
    emulator: PowerBIEmulator, delivery: Delivery, label: str
) -> None:
    keys = emulator.key_counts("FactEvent", "EventKey")
    raw, distinct = sum(keys.values()), len(keys)
    print(
        f"{label}: accepted {len(delivery.accepted)}, distinct {distinct}, raw rows {raw}, "
        f"raw duplicates {raw - distinct}, transient failures seen by workers "
        f"{delivery.transient_failures}, 429s Pulse caused {emulator.counters.throttled_by_limits}"
    )
    assert set(keys) == delivery.accepted  # DISTINCTCOUNT equals the accepted events
    assert emulator.counters.throttled_by_limits == 0
    assert max(emulator.counters.received_sizes) <= 10_000


async def test_a_429_storm_is_waited_out(fast_emulator: PowerBIEmulator) -> None:
    fast_emulator.faults.storm_429, fast_emulator.faults.storm_retry_after = 15, 3
    async with powerbi_sink(fast_emulator) as sink:
        delivery = await deliver(sink, fast_emulator, batches(20), stagger_sec=0.5)
        throttled = sink.stats()["throttled_429"]

    assert_each_accepted_event_once(fast_emulator, delivery, "429 storm")
    assert throttled == 15 == fast_emulator.counters.throttled_by_storm


@pytest.mark.slow
async def test_a_minute_of_5xx_is_ridden_out_behind_the_circuit_breaker(
    fast_emulator: PowerBIEmulator,
) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await sink.append(facts(1_000_000, 1))  # dataset resolved, flow established
        fast_emulator.faults.outage_until = fast_emulator.time.monotonic() + 60

        delivery = await deliver(sink, fast_emulator, batches(30), stagger_sec=3)
        stats = sink.stats()

    delivery.accepted.add("aloware:1000000")
    assert_each_accepted_event_once(fast_emulator, delivery, "60 s outage")
    assert stats["breaker_opened"] >= 1
    assert fast_emulator.counters.injected_5xx >= 5


async def test_lost_connections_replay_without_changing_the_count(
    fast_emulator: PowerBIEmulator,
) -> None:
    fast_emulator.faults.drop_before, fast_emulator.faults.drop_after = 2, 2
    async with powerbi_sink(fast_emulator) as sink:
        delivery = await deliver(sink, fast_emulator, batches(12), stagger_sec=0.5)

    assert_each_accepted_event_once(fast_emulator, delivery, "dropped connections")
    keys = fast_emulator.key_counts("FactEvent", "EventKey")
    assert sum(keys.values()) - len(keys) > 0  # the answers lost after storing were replayed


async def test_an_expired_token_mid_run_is_refreshed(fast_emulator: PowerBIEmulator) -> None:
    def expire_halfway(i: int) -> None:
        if i == 10:
            fast_emulator.aad.expire_all()

    async with powerbi_sink(fast_emulator) as sink:
        delivery = await deliver(
            sink, fast_emulator, batches(20), stagger_sec=1, during=expire_halfway
        )

    assert_each_accepted_event_once(fast_emulator, delivery, "expired token")
    assert fast_emulator.counters.token_expired >= 1
    assert delivery.transient_failures == 0  # refreshed inside the request, callers never saw it


async def test_slow_answers_never_exceed_five_pending(fast_emulator: PowerBIEmulator) -> None:
    fast_emulator.faults.slow_sec = 20
    async with powerbi_sink(fast_emulator) as sink:
        delivery = await deliver(sink, fast_emulator, batches(40, size=300), stagger_sec=0.5)

    assert_each_accepted_event_once(fast_emulator, delivery, "slow answers")
    assert fast_emulator.counters.max_pending_seen <= 5
    assert fast_emulator.counters.throttled_by_limit["pending"] == 0


@pytest.mark.slow
async def test_every_fault_at_once(fast_emulator: PowerBIEmulator) -> None:
    faults = fast_emulator.faults

    def chaos(i: int) -> None:
        if i == 5:
            faults.storm_429, faults.storm_retry_after = 5, 2
        if i == 10:
            faults.drop_before, faults.drop_after = 1, 1
        if i == 15:
            fast_emulator.aad.expire_all()
        if i == 20:
            faults.outage_until = fast_emulator.time.monotonic() + 30

    async with powerbi_sink(fast_emulator) as sink:
        delivery = await deliver(sink, fast_emulator, batches(40), stagger_sec=2, during=chaos)

    assert_each_accepted_event_once(fast_emulator, delivery, "every fault at once")

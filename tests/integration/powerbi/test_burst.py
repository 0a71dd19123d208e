"""A burst of 50,000 facts through the sink API: all rows once, every POST ≤ 10,000 rows, no 429.

(The through-the-daemon version joins once the daemon exists; this is the sink-level one.)
"""

from __future__ import annotations

import asyncio

import pytest

from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.powerbi.fixtures import facts
from tests.support.powerbi.harness import FakeRowCounts, powerbi_sink

EVENTS, PER_CALLER = 50_000, 100


def report(emulator: PowerBIEmulator, label: str) -> list[int]:
    sizes = emulator.counters.received_sizes
    keys = emulator.key_counts("FactEvent", "EventKey")
    print(
        f"{label}: {len(sizes)} PostRows, {len(sizes) / (EVENTS / 10_000):.1f} per 10,000 events, "
        f"largest {max(sizes)}, distinct {len(keys)}, raw {sum(keys.values())}, "
        f"429s Pulse caused {emulator.counters.throttled_by_limits}"
    )
    return sizes


@pytest.mark.slow
async def test_a_burst_of_50000_lands_once_in_few_full_requests(
    fast_emulator: PowerBIEmulator,
) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    sink.append(facts(n * PER_CALLER, PER_CALLER))
                    for n in range(EVENTS // PER_CALLER)
                )
            ),
            timeout=60,
        )
        stats = sink.stats()

    sizes = report(fast_emulator, "burst below 250k rows")
    keys = fast_emulator.key_counts("FactEvent", "EventKey")
    assert len(keys) == sum(keys.values()) == EVENTS
    assert max(sizes) <= 10_000
    assert len(sizes) <= 2 * EVENTS / 10_000
    assert fast_emulator.counters.throttled_by_limits == 0
    assert stats["throttled_429"] == 0


@pytest.mark.slow
async def test_a_burst_past_250k_rows_paces_one_full_request_every_30_seconds() -> None:
    # 20×, not more: a real second of scheduling jitter on a busy machine is 20 emulated ones.
    async with PowerBIEmulator(timebase=ScaledTime(20)) as emulator:
        async with powerbi_sink(
            emulator, row_counts=FakeRowCounts({"FactEvent": 250_000}), append_timeout_sec=900
        ) as sink:
            emulator.seed_rows("FactEvent", 250_000)
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        sink.append(facts(n * PER_CALLER, PER_CALLER))
                        for n in range(EVENTS // PER_CALLER)
                    )
                ),
                timeout=60,
            )

        sizes = report(emulator, "burst past 250k rows")
        keys = emulator.key_counts("FactEvent", "EventKey")
        assert len(keys) == sum(keys.values()) == EVENTS
        assert max(sizes) <= 10_000 and len(sizes) <= 2 * EVENTS / 10_000
        assert emulator.counters.throttled_by_limits == 0
        # grants are 30 s apart (3600 s / 120); at 20x, 50 ms of scheduling noise on a busy
        # machine moves one arrival by a second, so the spacing is checked on average
        accepted = [t for t, _ in emulator.counters.accepted_at]
        assert (accepted[-1] - accepted[0]) / (len(accepted) - 1) >= 28

"""One sink down for a minute beside another (SINKS=powerbi,fabric-eventhouse): the Eventhouse
answers every ingest 503 for 60 s while webhooks keep coming. Power BI keeps counting at its
usual lag (its breaker never opens, the Eventhouse's share is held), and once the Eventhouse is
back it catches up: both sinks end with every event, each once."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.fabric.test_same_counts import once_each, several_sinks_settings
from tests.emulators.clock import ScaledTime
from tests.emulators.kusto import KustoEmulator
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.fabric.harness import ensure
from tests.support.powerbi.daemon import RunningDaemon, powerbi_daemon

pytestmark = pytest.mark.slow

OUTAGE_SEC = 60.0
EVERY_SEC = 0.25  # one call a quarter second through the outage: 240 events
CATCH_UP_SEC = 60.0  # the Eventhouse's breaker probes at most 30 s apart
LAG_P99_SEC = 5.0


def keys(rows: list[dict[str, object]]) -> set[object]:
    return {row["EventKey"] for row in rows}


async def post_steadily(
    running: RunningDaemon, first_id: int, seconds: float, posted: dict[str, float]
) -> None:
    """One call every EVERY_SEC for `seconds`, each stamped with when the edge answered 202."""
    n = first_id
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        accepted, refused = await running.post_aloware([n], concurrency=1)
        assert accepted == [n], refused
        posted[f"aloware:{n}"] = time.monotonic()
        n += 1
        await asyncio.sleep(EVERY_SEC)


async def watch(powerbi: PowerBIEmulator, seen: dict[object, float], stop: asyncio.Event) -> None:
    """When each EventKey first shows in Power BI's FactEvent."""
    while not stop.is_set():
        now = time.monotonic()
        for key in keys(powerbi.rows("FactEvent")) - seen.keys():
            seen[key] = now
        await asyncio.sleep(0.05)


async def readyz(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        return response.status, await response.json()


async def metric(url: str, series: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(series))


async def test_a_minute_of_eventhouse_outage_leaves_powerbi_lag_alone_and_counts_once(
    tmp_path: Path,
) -> None:
    async with PowerBIEmulator(timebase=ScaledTime(20)) as powerbi, KustoEmulator() as kusto:
        await ensure(kusto)
        # a failing append gives up after 2 s: the breaker opens on the first batch
        settings = several_sinks_settings(powerbi, kusto, tmp_path, append_timeout_sec=2)
        async with powerbi_daemon(powerbi, settings, eventhouse=kusto) as running:
            seen: dict[object, float] = {}
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(powerbi, seen, stop))
            posted: dict[str, float] = {}

            kusto.faults.errors_5xx = 10**9  # down: every ingest answers 503
            await post_steadily(running, 800_000, OUTAGE_SEC / 2, posted)
            ready = await readyz(running.url)
            await post_steadily(running, 900_000, OUTAGE_SEC / 2, posted)
            during_outage = keys(kusto.rows("FactEvent"))
            kusto.faults.errors_5xx = 0  # back

            for _ in range(int(CATCH_UP_SEC / 0.2)):
                if keys(kusto.rows("FactEvent")) >= posted.keys():
                    break
                await asyncio.sleep(0.2)
            stop.set()
            await watcher
            held_open = await metric(
                running.url, 'pulse_breaker_opened_total{dependency="sink:fabric-eventhouse"}'
            )
            powerbi_open = await metric(
                running.url, 'pulse_breaker_opened_total{dependency="sink:powerbi"}'
            )
        facts = powerbi.rows("FactEvent"), kusto.rows("FactEvent")

    lags = sorted(seen[key] - at for key, at in posted.items() if key in seen)
    p99 = lags[int(0.99 * (len(lags) - 1))] if lags else float("inf")
    print(
        f"\npowerbi lag during the eventhouse outage: {len(lags)} events, "
        f"median {statistics.median(lags):.2f} s, p99 {p99:.2f} s, max {lags[-1]:.2f} s"
    )
    assert len(posted) >= 150 and not during_outage  # a real minute-long outage, real traffic
    assert held_open >= 1 and powerbi_open == 0  # only the Eventhouse's breaker opened
    status, body = ready  # ready through it: the edge stores, each sink's state is shown
    assert status == 200 and body["sinks"] in (
        {"powerbi": "closed", "fabric-eventhouse": state} for state in ("open", "half_open")
    )
    assert seen.keys() >= posted.keys() and p99 < LAG_P99_SEC  # Power BI kept its lag
    assert keys(facts[0]) == keys(facts[1]) == posted.keys()  # the Eventhouse caught up
    assert all(once_each(rows) for rows in facts)  # and neither counted anything twice

"""One scenario, two sinks at once: the same webhooks through one real daemon with
SINKS=powerbi,fabric-eventhouse give the same per-agent, per-day, per-metric counts in both
(what `DISTINCTCOUNT(FactEvent[EventKey])` and `PulseActivities()` count), each event pushed to
each sink once. Only settings choose the sinks."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pulse.bootstrap.settings import Settings
from tests.emulators.clock import ScaledTime
from tests.emulators.kusto import KustoEmulator
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.fabric.harness import ensure, eventhouse_settings
from tests.support.powerbi.daemon import daemon_settings, powerbi_daemon

pytestmark = pytest.mark.slow

SPECS = Path(__file__).parents[2] / "specs" / "webhooks"
ROSTER = ["42", "43"]
START_TIMEOUT_SEC = 20.0
DRAIN_TIMEOUT_SEC = 30.0

Count = Counter[tuple[int, str, str]]  # (DateKey, AgentKey, MetricID) -> distinct events


def _sample(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SPECS / f"{name}.json").read_text())["body"]
    return body


def scenario(seed: int = 7) -> tuple[list[bytes], Count]:
    """Calls and texts by two roster agents and one agent off the roster, over two business
    days, each delivered as Aloware does (initiation, disposition, repeats), shuffled."""
    rng = random.Random(seed)
    expected: Count = Counter()
    deliveries: list[bytes] = []
    initiated, disposed, text = (
        _sample("aloware-call-initiated"),
        _sample("aloware-call-disposed"),
        _sample("aloware-sms-outbound"),
    )
    for n in range(120):
        agent = rng.choice([*ROSTER, "99"])
        day = rng.choice(["2025-11-05", "2025-11-06"])
        stamp = f"{day} {rng.randrange(0, 24):02d}:{rng.randrange(60):02d}:00"
        is_call = n % 3 != 0
        final = json.loads(json.dumps(disposed if is_call else text))
        final["body"].update(id=str(700_000 + n), user_id=agent, created_at=stamp)
        copies = [final] * rng.randint(1, 4)
        if is_call:
            start = json.loads(json.dumps(initiated))
            start["body"].update(id=str(700_000 + n), user_id=agent, created_at=stamp)
            copies.append(start)
        deliveries += [json.dumps(c).encode() for c in copies]
        if agent in ROSTER:
            expected[(int(day.replace("-", "")), agent, "CALLS" if is_call else "TEXTS")] += 1
    rng.shuffle(deliveries)
    return deliveries, expected


def distinct_counts(rows: list[dict[str, Any]]) -> Count:
    seen: dict[Any, tuple[int, str, str]] = {}
    for row in rows:
        seen[row["EventKey"]] = (row["DateKey"], row["AgentKey"], row["MetricID"])
    return Counter(seen.values())


async def post_all(url: str, secret: str, deliveries: list[bytes]) -> None:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=30)) as http:
        for body in deliveries:
            async with http.post("/webhooks/aloware", data=body, headers=headers) as response:
                assert response.status == 202, await response.text()


async def settled(read: Callable[[], Count], expected: Count, within_sec: float = 30.0) -> Count:
    """The counts once they reach `expected`, or what they were when time ran out."""
    deadline = time.monotonic() + within_sec
    counts = read()
    while counts != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        counts = read()
    return counts


def several_sinks_settings(
    powerbi: PowerBIEmulator, kusto: KustoEmulator, data_dir: Path, **fabric: Any
) -> Settings:
    """What an operator migrating sets: SINKS=powerbi,fabric-eventhouse, each sink's own
    settings (POWERBI__*, FABRIC__*) pointing at its emulator."""
    return daemon_settings(
        powerbi,
        data_dir,
        roster_agents=ROSTER,
        sinks=["powerbi", "fabric-eventhouse"],
        fabric=eventhouse_settings(kusto, **fabric),
    )


def once_each(rows: list[dict[str, Any]]) -> bool:
    """Every EventKey is one row: the sink was handed each event exactly once."""
    return max(Counter(row["EventKey"] for row in rows).values(), default=1) == 1


async def test_one_daemon_with_powerbi_and_eventhouse_counts_the_same_events_in_both(
    tmp_path: Path,
) -> None:
    deliveries, expected = scenario()
    assert len(expected) >= 6 and sum(expected.values()) >= 60  # the scenario is not trivial

    async with PowerBIEmulator(timebase=ScaledTime(20)) as powerbi, KustoEmulator() as kusto:
        await ensure(kusto)
        settings = several_sinks_settings(powerbi, kusto, tmp_path)
        async with powerbi_daemon(powerbi, settings, eventhouse=kusto) as running:
            assert settings.aloware_secret is not None
            await post_all(running.url, settings.aloware_secret.get_secret_value(), deliveries)
            via_powerbi = await settled(
                lambda: distinct_counts(powerbi.rows("FactEvent")), expected
            )
            via_eventhouse = await settled(
                lambda: distinct_counts(kusto.rows("FactEvent")), expected
            )
        dates = {row["DateKey"] for row in kusto.rows("DimDate")}
        facts = powerbi.rows("FactEvent"), kusto.rows("FactEvent")

    assert via_powerbi == expected
    assert via_eventhouse == via_powerbi
    assert all(once_each(rows) for rows in facts)  # each sink's own ledger: no repeat pushed
    assert {20251105, 20251106} <= dates  # the dimension rows the facts refer to exist

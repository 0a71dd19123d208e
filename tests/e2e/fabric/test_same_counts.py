"""One scenario, two sinks: the same webhooks through the real daemon with SINK=powerbi and with
SINK=fabric-eventhouse give the same per-agent, per-day, per-metric counts (what
`DISTINCTCOUNT(FactEvent[EventKey])` and `PulseActivities()` count). Only settings differ."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pulse.bootstrap.container import Container
from pulse.bootstrap.settings import Settings
from tests.emulators.aad import AuthorityRedirect, rerouted
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


@asynccontextmanager
async def eventhouse_daemon(kusto: KustoEmulator, data_dir: Path) -> AsyncIterator[tuple[str, str]]:
    """The real container and daemon with SINK=fabric-eventhouse; only Entra ID's host is
    rerouted (the Kusto query URI is the emulator's, a setting like any other)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        sink="fabric-eventhouse",
        roster_agents=ROSTER,
        aloware_auth="bearer",
        aloware_secret=secrets.token_hex(16),
        hubspot_auth="none",
        admin_hmac_secret=None,
        otel_exporter_otlp_endpoint=None,
        fabric=eventhouse_settings(kusto),
    )
    session = AuthorityRedirect(kusto.url)
    container = Container(settings=settings)
    container.eventhouse_auth.override(rerouted(container.eventhouse_auth, session))
    daemon = await container.daemon()
    task = asyncio.create_task(daemon.run("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while daemon.port is None:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "the daemon did not start listening"
            await asyncio.sleep(0.02)
        assert settings.aloware_secret is not None
        yield f"http://127.0.0.1:{daemon.port}", settings.aloware_secret.get_secret_value()
        daemon.stop_requested.set()
        assert await asyncio.wait_for(task, DRAIN_TIMEOUT_SEC) == 0
    finally:
        if not task.done():
            daemon.stop_requested.set()
            await asyncio.wait({task}, timeout=DRAIN_TIMEOUT_SEC)
            task.cancel()
        closing = container.shutdown_resources()
        if closing is not None:
            await closing
        session.close()


async def test_powerbi_and_eventhouse_count_the_same_events_per_agent_and_day(
    tmp_path: Path,
) -> None:
    deliveries, expected = scenario()
    assert len(expected) >= 6 and sum(expected.values()) >= 60  # the scenario is not trivial

    async with PowerBIEmulator(timebase=ScaledTime(20)) as powerbi:
        settings = daemon_settings(powerbi, tmp_path / "powerbi", roster_agents=ROSTER)
        async with powerbi_daemon(powerbi, settings) as running:
            assert settings.aloware_secret is not None
            await post_all(running.url, settings.aloware_secret.get_secret_value(), deliveries)
            via_powerbi = await settled(
                lambda: distinct_counts(powerbi.rows("FactEvent")), expected
            )

    async with KustoEmulator() as kusto:
        await ensure(kusto)
        async with eventhouse_daemon(kusto, tmp_path / "eventhouse") as (url, secret):
            await post_all(url, secret, deliveries)
            via_eventhouse = await settled(
                lambda: distinct_counts(kusto.rows("FactEvent")), expected
            )
        dates = {row["DateKey"] for row in kusto.rows("DimDate")}

    assert via_powerbi == expected
    assert via_eventhouse == via_powerbi
    assert {20251105, 20251106} <= dates  # the dimension rows the facts refer to exist

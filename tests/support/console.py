"""The console as `pulse serve` builds it (real container, embedded stores, a fixed clock), with
today's facts in the warehouse, an open incident, a resolved one and two dead letters."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from dependency_injector import providers

from pulse.adapters_in.http.console import session as console_session
from pulse.bootstrap.container import Container
from pulse.bootstrap.settings import Settings
from pulse.core.calendar import dim_date
from pulse.core.model import (
    DateKey,
    DimAgent,
    DimMetric,
    EventKey,
    FactEvent,
    IngestEnvelope,
    MetricID,
)
from tests.fakes import FakeClock

SECRET = "console-test-secret-0123456789abcdef"
NOW = datetime(2025, 11, 5, 17, 0, tzinfo=UTC)  # a Wednesday, noon in New York
TODAY = date(2025, 11, 5)


@dataclass
class ConsoleRig:
    app: web.Application
    container: Container
    clock: FakeClock

    def link(self, base: str = "", at: datetime | None = None) -> str:
        """A `pulse console-link` URL (path and query only when `base` is empty)."""
        return console_session.one_time_link(SECRET, base, at or self.clock.now()).url

    async def part(self, name: str) -> Any:
        """One of the container's parts, awaited when it is (or needs) an async resource."""
        built = getattr(self.container, name)()
        return await built if inspect.isawaitable(built) else built

    async def audit(self) -> list[Any]:
        return list(await (await self.part("audit_log")).recent(100))

    async def open_incidents(self) -> list[Any]:
        return list(await (await self.part("incidents")).store.open())

    async def inbox_depth(self) -> int:
        return int((await (await self.part("inbox")).stats()).depth)


@asynccontextmanager
async def console_rig(data_dir: Path, **overrides: Any) -> AsyncIterator[ConsoleRig]:
    chosen: dict[str, Any] = {
        "data_dir": data_dir,
        "aloware_secret": "aloware-console-test-secret",
        "hubspot_client_secret": "hubspot-console-test-secret",
        "admin_hmac_secret": SECRET,
        "business_timezone": "America/New_York",
        **overrides,
    }
    settings = Settings(_env_file=None, **chosen)  # type: ignore[call-arg]
    container = Container(settings=settings)
    clock = FakeClock(NOW)
    container.clock.override(providers.Object(clock))
    built = container.app()
    if inspect.isawaitable(built):
        built = await built
    try:
        yield ConsoleRig(built, container, clock)
    finally:
        closing = container.shutdown_resources()
        if closing is not None:
            await closing
        container.clock.reset_override()


def _fact(n: int, agent: str, metric: MetricID) -> FactEvent:
    occurred = NOW - timedelta(hours=1)
    return FactEvent(
        EventKey=EventKey(f"{metric.value.lower()}:{n}"),
        Source="aloware",
        MetricID=metric,
        AgentKey=agent,
        DateKey=DateKey(20251105),
        ShiftKey="ALLDAY",
        OccurredAtUtc=occurred,
        OccurredAtLocal=occurred.replace(tzinfo=None),
        MetricMonthKey=f"2025-11:{metric.value}",
    )


async def seed_today(rig: ConsoleRig) -> None:
    """John: 10/10 calls (Green), 2/5 texts (Red); Jane: 8/10 calls (Yellow), 0/5 texts (Red)."""
    warehouse = await rig.part("warehouse")
    synced = NOW - timedelta(hours=10)
    await warehouse.upsert(
        [
            dim_date(TODAY),
            DimMetric("2025-11:CALLS", MetricID.CALLS, "2025-11", 10, 0.8, 1),
            DimMetric("2025-11:TEXTS", MetricID.TEXTS, "2025-11", 5, 0.5, 1),
            DimAgent("2", "John", None, "8465", True, synced),
            DimAgent("3", "Jane", None, "8465", True, synced),
        ]
    )
    await warehouse.append(
        [_fact(i, "2", MetricID.CALLS) for i in range(10)]
        + [_fact(100 + i, "2", MetricID.TEXTS) for i in range(2)]
        + [_fact(200 + i, "3", MetricID.CALLS) for i in range(8)]
    )


async def seed_trouble(rig: ConsoleRig) -> None:
    """Two dead letters (one before the resolved incident's window, one inside it), a resolved
    `powerbi:5xx` incident and an open `powerbi:429` one."""
    monitor, inbox = await rig.part("incidents"), await rig.part("inbox")
    letters = await rig.part("dead_letters")
    for minute, request_id, reason in (
        (0, "r-early", "unparseable: no id"),
        (2, "r-window", "sink rejected"),
    ):
        rig.clock.current = NOW + timedelta(minutes=minute)
        body = json.dumps({"event": "x", "body": {"id": request_id}}).encode()
        await inbox.put(IngestEnvelope(request_id, "aloware", rig.clock.now(), body, {}))
        (delivery,) = await inbox.take(1, wait=0.5)
        await letters.add(delivery, reason)
        await inbox.ack([delivery.receipt])
    rig.clock.current = NOW + timedelta(minutes=1)  # opens between the two letters
    for _ in range(5):
        monitor.note_one("powerbi:5xx", "503 from PostRows")
    await monitor.round()
    rig.clock.current = NOW + timedelta(minutes=12)  # quiet past resolve_after: resolved
    await monitor.round()
    for _ in range(5):
        monitor.note_one("powerbi:429", "429 Too Many Requests")
    await monitor.round()

"""Outages hold, they never park: through the real SQLite inbox, ledger and warehouse, a sink
that fails transiently opens the sink's breaker; the workers stop taking, keep what they hold
hidden without taking it again, probe, and count everything once when the sink is back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_in.breakers import Breakers, State
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.worker import InboxWorkers
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters
from pulse.core.ingest import IngestConfig, IngestPorts
from pulse.core.model import IngestEnvelope
from pulse.ports.inbox import Inbox
from tests.integration.conftest import eventually
from tests.support.local import call_envelope, local_stores
from tests.support.outage_sink import OutageSink

RECEIVED = datetime(2025, 11, 5, 17, 22, 30, tzinfo=UTC)


def attempts(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [a for (a,) in conn.execute("SELECT attempts FROM inbox")]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[IngestPorts, OutageSink, Path]]:
    parsers = {"aloware": AlowareSource(auth="none", secret=None)}
    async with local_stores(
        tmp_path, parsers, visibility=timedelta(seconds=2), sink=OutageSink
    ) as stores:
        yield stores.ports, stores.ports.sink, tmp_path / "inbox.sqlite"  # type: ignore[misc]


async def emptied(inbox: Inbox) -> bool:
    return (await inbox.stats()).depth == 0


def call(n: int) -> IngestEnvelope:
    return call_envelope(f"r{n}", str(n))


async def test_a_sink_outage_holds_deliveries_and_counts_each_once_after(world) -> None:  # type: ignore[no-untyped-def]
    ports, sink, inbox_file = world
    clock = SystemClock()
    breakers = Breakers(
        clock, first_cooldown=timedelta(milliseconds=200), longest_cooldown=timedelta(seconds=1)
    )
    config = IngestConfig(zone=ZoneInfo("UTC"), retry_base=timedelta(milliseconds=50))
    workers = InboxWorkers(
        ports,
        config,
        clock,
        Metrics(),
        count=2,
        batch_size=10,
        take_wait=0.05,
        breakers=breakers,
        hold_extension=timedelta(seconds=2),  # as long as the inbox's visibility: it must renew
    )
    sink.down = True
    for n in range(1, 31):
        await ports.inbox.put(call(n))
    workers.start()
    try:
        assert await eventually(lambda: _is_open(breakers), within=5.0)
        await asyncio.sleep(4.0)  # twice the visibility timeout: held ones must not reappear
        for n in range(31, 41):  # the edge keeps storing during the outage
            await ports.inbox.put(call(n))
        assert breakers["sink"].state is not State.CLOSED
        assert max(attempts(inbox_file)) == 1  # nothing was taken twice
        assert sink.refused <= 12  # probes back off; no storm of retries
        assert (await ports.inbox.stats()).depth == 40

        sink.down = False
        assert await eventually(partial(emptied, ports.inbox), within=10.0)
    finally:
        await workers.drain(budget_sec=2.0)
    rows = await sink.inner.rows("FactEvent")
    assert sorted(r["EventKey"] for r in rows) == sorted(f"aloware:{n}" for n in range(1, 41))
    assert await SqliteDeadLetters(ports.inbox).list() == []
    assert breakers["sink"].state is State.CLOSED and breakers["sink"].opened == 1


async def _is_open(breakers: Breakers) -> bool:
    return not breakers.intake_open


async def test_stopping_hands_held_deliveries_back(world) -> None:  # type: ignore[no-untyped-def]
    ports, sink, _ = world
    clock = SystemClock()
    breakers = Breakers(clock, first_cooldown=timedelta(seconds=30))
    config = IngestConfig(zone=ZoneInfo("UTC"))
    workers = InboxWorkers(
        ports, config, clock, Metrics(), count=1, take_wait=0.05, breakers=breakers
    )
    sink.down = True
    await ports.inbox.put(call(1))
    workers.start()
    assert await eventually(lambda: _is_open(breakers), within=5.0)
    await workers.drain(budget_sec=1.0)
    taken = await ports.inbox.take(10, 0.1)  # handed back: visible at once, not after 30 s
    assert [d.envelope.request_id for d in taken] == ["r1"]


async def test_a_sink_down_beside_another_holds_its_share_while_the_other_counts(
    tmp_path: Path,
) -> None:
    """SINKS=local,backup with the backup down: the local sink counts what the worker takes
    while the backup's share is held, up to `max_held`; once the backup is back it catches up,
    counting each event once in its own ledger namespace."""
    from dataclasses import replace

    from pulse.adapters_out.ledger_namespace import NamespacedLedger
    from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
    from pulse.core.lanes import SinkLane

    parsers = {"aloware": AlowareSource(auth="none", secret=None)}
    async with local_stores(tmp_path, parsers, visibility=timedelta(seconds=2)) as stores:
        backup = OutageSink(SqliteWarehouse(tmp_path / "backup.sqlite"))
        backup_ledger = NamespacedLedger(stores.ledger, "backup/")
        lanes = (
            SinkLane("local", stores.ledger, stores.warehouse, "sink:local"),
            SinkLane("backup", backup_ledger, backup, "sink:backup"),  # type: ignore[arg-type]
        )
        ports = replace(stores.ports, lanes=lanes)
        clock = SystemClock()
        breakers = Breakers(
            clock, first_cooldown=timedelta(milliseconds=200), longest_cooldown=timedelta(seconds=1)
        )
        workers = InboxWorkers(
            ports,
            IngestConfig(zone=ZoneInfo("UTC"), retry_base=timedelta(milliseconds=50)),
            clock,
            Metrics(),
            count=1,
            batch_size=5,
            take_wait=0.05,
            breakers=breakers,
            hold_extension=timedelta(seconds=2),
            max_held=10,
        )
        backup.down = True
        for n in range(1, 31):
            await ports.inbox.put(call(n))

        async def facts(warehouse: SqliteWarehouse) -> int:
            return len(await warehouse.rows("FactEvent"))

        async def local_counted_two_batches() -> bool:
            return await facts(stores.warehouse) == 10

        workers.start()
        try:
            assert await eventually(local_counted_two_batches, within=5.0)
            await asyncio.sleep(3.0)  # past the visibility timeout: held, bounded, not retaken
            assert await facts(stores.warehouse) == 10 and await facts(backup.inner) == 0
            assert max(attempts(tmp_path / "inbox.sqlite")) == 1
            assert breakers["sink:backup"].state is not State.CLOSED
            assert "sink:local" not in breakers.by_dependency  # never failed, never waited

            backup.down = False
            assert await eventually(partial(emptied, ports.inbox), within=10.0)
        finally:
            await workers.drain(budget_sec=2.0)
        everyone = {f"aloware:{n}" for n in range(1, 31)}
        rows = [await stores.warehouse.rows("FactEvent"), await backup.inner.rows("FactEvent")]
        assert [{r["EventKey"] for r in found} for found in rows] == [everyone, everyone]
        assert await backup_ledger.done_among(sorted(everyone)) == everyone
        await backup.inner.close()

"""The inbox workers yield to a saturated edge: they take nothing while it is busy, for at most
WORKER_YIELD_SEC, and count everything once it is not (or once that much has passed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_in.edge_load import EdgeLoad
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.base import WebhookSource
from pulse.adapters_in.worker import InboxWorkers
from pulse.adapters_out.clock import SystemClock
from pulse.core.ingest import IngestConfig
from tests.integration.conftest import eventually
from tests.support.local import LocalStores, call_envelope, local_stores

EVENTS = 30


@pytest.fixture
async def stores(
    tmp_path: Path, webhook_sources: dict[str, WebhookSource]
) -> AsyncIterator[LocalStores]:
    async with local_stores(tmp_path, webhook_sources) as stores:
        for n in range(EVENTS):
            await stores.inbox.put(call_envelope(f"r{n}", str(900_000 + n)))
        yield stores


class SaturatedEdge(EdgeLoad):
    """An edge as busy as the test says."""

    def __init__(self) -> None:
        super().__init__(busy_rps=1)
        self.saturated = True

    @property
    def busy(self) -> bool:
        return self.saturated


def busy_edge() -> SaturatedEdge:
    return SaturatedEdge()


def workers_for(stores: LocalStores, edge: EdgeLoad, yield_sec: float) -> InboxWorkers:
    config = IngestConfig(zone=ZoneInfo("UTC"), goals={}, retry_base=timedelta(milliseconds=50))
    return InboxWorkers(
        stores.ports, config, SystemClock(), Metrics(), batch_size=10, take_wait=0.05,
        edge=edge, yield_sec=yield_sec,
    )  # fmt: skip


async def test_workers_take_nothing_while_the_edge_is_busy_and_everything_after(
    stores: LocalStores,
) -> None:
    edge = busy_edge()
    workers = workers_for(stores, edge, yield_sec=30)
    workers.start()
    try:
        await asyncio.sleep(0.5)
        assert (await stores.inbox.stats()).depth == EVENTS
        edge.saturated = False
        assert await eventually(stores.settled, within=5.0)
        assert len(await stores.counted()) == workers.acked == EVENTS
    finally:
        await workers.drain(2.0)


async def test_an_edge_that_stays_busy_delays_counting_by_yield_sec_at_most(
    stores: LocalStores,
) -> None:
    workers = workers_for(stores, busy_edge(), yield_sec=0.3)
    workers.start()
    try:
        assert await eventually(stores.settled, within=5.0)
        assert len(await stores.counted()) == workers.acked == EVENTS
    finally:
        await workers.drain(2.0)


async def test_workers_yielding_to_the_edge_stop_at_once(stores: LocalStores) -> None:
    workers = workers_for(stores, busy_edge(), yield_sec=30)
    workers.start()
    await asyncio.sleep(0.2)
    report = await asyncio.wait_for(workers.drain(5.0), timeout=1.0)
    assert (report.acked, report.in_flight, report.cancelled) == (0, 0, 0)
    assert (await stores.inbox.stats()).depth == EVENTS

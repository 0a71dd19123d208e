"""Poison is isolated: through the real SQLite inbox, ledger and warehouse with workers running,
each poison payload mixed into batches of valid envelopes is dead-lettered with a reason, every
valid envelope is counted, and nothing stays in the inbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.adapters_in.worker import InboxWorkers
from pulse.adapters_out.clock import SystemClock
from pulse.core.ingest import IngestConfig, IngestPorts
from pulse.core.model import IngestEnvelope, SourceEvent
from tests.integration.conftest import eventually
from tests.support.local import RECEIVED, LocalStores, call_envelope, local_stores

POISON_CALLS = {
    "aloware:duration-1e19": {"duration": 1e19},
    "aloware:year-0": {"created_at": "0000-01-01 00:00:00"},
    "aloware:year-1": {"created_at": "0001-01-01 00:00:00"},
    "aloware:surrogate-id": {"id": "\ud800"},
}
SURROGATE_TICKET = (
    b'[{"eventId":1,"subscriptionType":"ticket.creation","objectId":"\\ud800",'
    b'"occurredAt":1762362142417}]'
)


class CrashOn:
    """A parser that raises what validation cannot foresee (a bug) for one request id."""

    def __init__(self, inner: AlowareSource, request_id: str) -> None:
        self.inner, self.request_id = inner, request_id
        self.name, self.kept_headers = inner.name, inner.kept_headers

    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        if envelope.request_id == self.request_id:
            raise KeyError("a bug nobody foresaw")
        return self.inner.parse(envelope)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[LocalStores]:
    parsers = {
        "aloware": AlowareSource(auth="none", secret=None),
        "hubspot": HubSpotSource(client_secret="s" * 32),
    }
    async with local_stores(tmp_path, parsers) as stores:
        yield stores


async def run_workers(stores: LocalStores, ports: IngestPorts, **options: Any) -> None:
    config = IngestConfig(zone=ZoneInfo("America/New_York"), retry_base=timedelta(milliseconds=50))
    workers = InboxWorkers(ports, config, SystemClock(), Metrics(), take_wait=0.05, **options)
    workers.start()
    try:
        assert await eventually(stores.settled, within=10.0), await stores.inbox.stats()
    finally:
        await workers.drain(budget_sec=2.0)


async def test_each_poison_is_dead_lettered_first_time_and_its_batch_is_counted(
    stores: LocalStores,
) -> None:
    valid: set[str] = set()
    poison = [call_envelope(name, "999", **fields) for name, fields in POISON_CALLS.items()]
    poison.append(
        IngestEnvelope("hubspot:surrogate-objectId", "hubspot", RECEIVED, SURROGATE_TICKET, {})
    )
    n = 0
    for bad in poison:
        for _ in range(5):  # valid envelopes on both sides of each poison, in the same batches
            n += 1
            await stores.inbox.put(call_envelope(f"valid-{n}", str(1000 + n)))
            valid.add(f"aloware:{1000 + n}")
        await stores.inbox.put(bad)

    await run_workers(stores, stores.ports)

    assert await stores.counted() == valid
    letters = await stores.dead_letters.list()
    assert {d.envelope.request_id for d in letters} == {p.request_id for p in poison}
    assert all(d.reason.startswith("unparseable: ") for d in letters), letters
    assert all(d.attempts == 1 for d in letters)


async def test_an_envelope_that_crashes_its_batch_is_split_out_retried_then_dead_lettered(
    stores: LocalStores,
) -> None:
    for n in range(1, 11):
        await stores.inbox.put(call_envelope(f"valid-{n}", str(1000 + n)))
        if n == 6:
            await stores.inbox.put(call_envelope("crasher", "6000"))
    crashing = CrashOn(AlowareSource(auth="none", secret=None), "crasher")
    ports = replace(stores.ports, parsers={**stores.ports.parsers, "aloware": crashing})

    await run_workers(stores, ports, max_attempts=3, crash_retry_delay=timedelta(milliseconds=20))

    assert await stores.counted() == {f"aloware:{1000 + n}" for n in range(1, 11)}
    (letter,) = await stores.dead_letters.list()
    assert letter.envelope.request_id == "crasher"
    assert letter.attempts == 3
    assert letter.reason == "failed 3 times: KeyError: 'a bug nobody foresaw'"

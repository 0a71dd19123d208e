"""Poison is isolated: through the real SQLite inbox, ledger and warehouse with workers running,
each poison payload mixed into batches of valid envelopes is dead-lettered with a reason, every
valid envelope is counted, and nothing stays in the inbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters_in.metrics import Metrics
from adapters_in.sources.aloware import AlowareSource
from adapters_in.sources.hubspot import HubSpotSource
from adapters_in.worker import InboxWorkers
from adapters_out.clock import SystemClock
from adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from adapters_out.sqlite.ledger import SqliteLedger
from adapters_out.sqlite.warehouse import SqliteWarehouse
from adapters_out.static.crm import StaticCrmDirectory
from adapters_out.static.roster import StaticRoster
from core.ingest import IngestConfig, IngestPorts
from core.model import IngestEnvelope, SourceEvent
from tests.integration.conftest import eventually

RECEIVED = datetime(2025, 11, 5, 17, 22, 30, tzinfo=UTC)
POISON = {
    "aloware:duration-1e19": ("aloware", {"duration": 1e19}),
    "aloware:year-0": ("aloware", {"created_at": "0000-01-01 00:00:00"}),
    "aloware:year-1": ("aloware", {"created_at": "0001-01-01 00:00:00"}),
    "aloware:surrogate-id": ("aloware", {"id": "\ud800"}),
    "hubspot:surrogate-objectId": ("hubspot", None),
}


def call(n: int, **fields: object) -> bytes:
    body: dict[str, object] = {
        "id": str(1000 + n),
        "user_id": "42",
        "direction": "2",
        "type": "1",
        "disposition_status": "completed",
        "duration": "44",
        "created_at": "2025-11-05 17:22:28",
    }
    body.update(fields)
    return json.dumps({"event": "OutboundPhoneCall-DispositionCompleted", "body": body}).encode()


def envelope(request_id: str, source: str, body: bytes) -> IngestEnvelope:
    return IngestEnvelope(request_id, source, RECEIVED, body, {})


@dataclass
class Stores:
    inbox: SqliteInbox
    ledger: SqliteLedger
    warehouse: SqliteWarehouse
    ports: IngestPorts

    async def settled(self) -> bool:
        return (await self.inbox.stats()).depth == 0

    async def counted(self) -> set[str]:
        return {r["EventKey"] for r in await self.warehouse.rows("FactEvent")}

    async def dead(self) -> dict[str, str]:
        return {d.envelope.request_id: d.reason for d in await SqliteDeadLetters(self.inbox).list()}


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
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    clock = SystemClock()
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, timedelta(seconds=60))
    ledger = SqliteLedger(tmp_path / "ledger.sqlite", clock)
    warehouse = SqliteWarehouse(tmp_path / "warehouse.sqlite")
    (tmp_path / "crm.json").write_text("{}")
    ports = IngestPorts(
        parsers={
            "aloware": AlowareSource(auth="none", secret=None),
            "hubspot": HubSpotSource(client_secret="s" * 32),
        },
        inbox=inbox,
        dead_letters=SqliteDeadLetters(inbox),
        ledger=ledger,
        sink=warehouse,
        roster=StaticRoster(agent_ids=["42"]),
        crm=StaticCrmDirectory(tmp_path / "crm.json"),
    )
    yield Stores(inbox, ledger, warehouse, ports)
    await inbox.close()
    await ledger.close()
    await warehouse.close()


async def run_workers(stores: Stores, ports: IngestPorts, **options: object) -> None:
    config = IngestConfig(zone=ZoneInfo("America/New_York"), retry_base=timedelta(milliseconds=50))
    workers = InboxWorkers(ports, config, SystemClock(), Metrics(), take_wait=0.05, **options)  # type: ignore[arg-type]
    workers.start()
    try:
        assert await eventually(stores.settled, within=10.0), await stores.inbox.stats()
    finally:
        await workers.drain(budget_sec=2.0)


async def test_each_poison_is_dead_lettered_first_time_and_its_batch_is_counted(
    stores: Stores,
) -> None:
    valid: set[str] = set()
    n = 0
    for name, (source, fields) in POISON.items():
        for _ in range(5):  # valid envelopes on both sides of each poison, in the same batches
            n += 1
            await stores.inbox.put(envelope(f"valid-{n}", "aloware", call(n)))
            valid.add(f"aloware:{1000 + n}")
        if source == "aloware":
            body = call(999, **(fields or {}))
        else:
            body = b'[{"eventId":1,"subscriptionType":"ticket.creation","objectId":"\\ud800","occurredAt":1762362142417}]'
        await stores.inbox.put(envelope(name, source, body))

    await run_workers(stores, stores.ports)

    assert await stores.counted() == valid
    dead = await stores.dead()
    assert set(dead) == set(POISON)
    assert all(reason.startswith("unparseable: ") for reason in dead.values()), dead
    assert all(d.attempts == 1 for d in await SqliteDeadLetters(stores.inbox).list())


async def test_an_envelope_that_crashes_its_batch_is_split_out_retried_then_dead_lettered(
    stores: Stores,
) -> None:
    for n in range(1, 11):
        await stores.inbox.put(envelope(f"valid-{n}", "aloware", call(n)))
        if n == 6:
            await stores.inbox.put(envelope("crasher", "aloware", call(6000)))
    parsers = {
        **stores.ports.parsers,
        "aloware": CrashOn(AlowareSource(auth="none", secret=None), "crasher"),
    }
    ports = replace(stores.ports, parsers=parsers)

    await run_workers(stores, ports, max_attempts=3, crash_retry_delay=timedelta(milliseconds=20))

    assert await stores.counted() == {f"aloware:{1000 + n}" for n in range(1, 11)}
    (letter,) = await SqliteDeadLetters(stores.inbox).list()
    assert letter.envelope.request_id == "crasher"
    assert letter.attempts == 3
    assert letter.reason == "failed 3 times: KeyError: 'a bug nobody foresaw'"

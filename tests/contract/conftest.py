"""Port contract suites: one suite per port, run over every adapter of that port.

Extension point: to put a new adapter under a suite, add ONE entry to the matching factory dict
below. Every test of the suite then runs once per entry (the entry's name is the test id).

| dict                | suite                                       | factory(tmp_path, …) yields  |
|---------------------|---------------------------------------------|------------------------------|
| INBOX_FACTORIES     | test_inbox_contract, test_dead_letters_...  | InboxUnderTest               |
| LEDGER_FACTORIES    | test_ledger_contract                        | LedgerUnderTest              |
| SINK_FACTORIES      | test_sink_contract, test_integrity_contract | SinkUnderTest                |
| ROSTER_FACTORIES    | test_directory_contract                     | a Roster seeded with agents  |
| CRM_FACTORIES       | test_directory_contract                     | a CrmDirectory seeded        |
| BUDGET_FACTORIES    | test_push_budget_contract                   | BudgetUnderTest              |

A factory is an async context manager function (`@asynccontextmanager`): it builds the adapter,
yields it (wrapped in its `…UnderTest` where the suite needs more than the port), and closes it
on exit. Store factories take `(tmp_path, clock)`; the clock is a `FakeClock` the suite moves
(pass it to the adapter, or give the harness a `pass_time` that waits for real when the store
keeps its own time, e.g. SQS visibility). Directory factories take `(tmp_path, seed)` and serve
exactly the seeded agents / CRM objects in their own way (a file, a local fake API server).
Budget factories take the `Budgets` to keep and run on their own moved clock.
Suites assert port behaviour only; checks of one technology's internals live in tests/unit and
tests/integration.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulse.adapters_out.aloware.roster import AlowareRoster
from pulse.adapters_out.hubspot.crm import HubSpotCrm
from pulse.adapters_out.ledger_namespace import NamespacedLedger
from pulse.adapters_out.powerbi.limiter import Budgets
from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from pulse.adapters_out.sqlite.ledger import SqliteLedger
from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.adapters_out.static.crm import StaticCrmDirectory
from pulse.adapters_out.static.roster import StaticRoster
from pulse.core.model import CrmObject, IngestEnvelope, RosterAgent
from pulse.ports.directory import CrmDirectory, Roster
from pulse.ports.inbox import DeadLetters, Inbox
from pulse.ports.ledger import Ledger
from pulse.ports.sink import Sink
from tests.emulators.aloware import AlowareEmulator
from tests.emulators.hubspot import HubSpotEmulator
from tests.fakes import FakeClock
from tests.support.aws.factories import dynamodb_ledger, sqs_inbox
from tests.support.fabric.harness import eventhouse_sink_under_test, eventstream_sink_under_test
from tests.support.powerbi.budgets import BudgetUnderTest, dynamodb_budget, in_memory_budget
from tests.support.powerbi.harness import powerbi_sink_under_test

PassTime = Callable[[float], Awaitable[None]]


def moving(clock: FakeClock) -> PassTime:
    """`pass_time` for adapters that read the injected clock: time passes instantly."""

    async def pass_time(seconds: float) -> None:
        clock.advance(seconds)

    return pass_time


def envelope(request_id: str, body: bytes = b'{"id": 1}') -> IngestEnvelope:
    """A webhook envelope as the edge stores it (aware UTC time, raw bytes, a few headers)."""
    return IngestEnvelope(
        request_id=request_id,
        source="aloware",
        received_at=datetime(2025, 11, 5, 17, 0, 1, 250_000, tzinfo=UTC),
        body=body,
        headers={"content-type": "application/json", "x-request-id": request_id},
    )


# --- what each factory yields -----------------------------------------------------------------


@dataclass
class InboxUnderTest:
    inbox: Inbox
    dead_letters: DeadLetters
    visibility: timedelta
    pass_time: PassTime


@dataclass
class LedgerUnderTest:
    ledger: Ledger
    ttl: timedelta
    pass_time: PassTime
    native_ttl: bool = False  # the store deletes expired keys itself; purge_expired returns 0
    other_process: Callable[[], AbstractAsyncContextManager[Ledger]] | None = None
    """A second ledger on the same store, as another process (or a restart) would open it."""


@dataclass
class SinkUnderTest:
    sink: Sink
    rows: Callable[[str], Awaitable[list[dict[str, Any]]]]
    """What a reader of the sink sees in a table, as column → value (values as the sink stores them)."""


StoreFactory = Callable[[Path, FakeClock], AbstractAsyncContextManager[Any]]
RosterFactory = Callable[[Path, Sequence[RosterAgent]], AbstractAsyncContextManager[Roster]]
CrmFactory = Callable[[Path, Sequence[CrmObject]], AbstractAsyncContextManager[CrmDirectory]]
BudgetFactory = Callable[[Budgets], AbstractAsyncContextManager[BudgetUnderTest]]


# --- SQLite and static (embedded defaults) ----------------------------------------------------


@asynccontextmanager
async def sqlite_inbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InboxUnderTest]:
    visibility = timedelta(seconds=30)
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, visibility)
    try:
        yield InboxUnderTest(inbox, SqliteDeadLetters(inbox), visibility, moving(clock))
    finally:
        await inbox.close()


@asynccontextmanager
async def sqlite_ledger(tmp_path: Path, clock: FakeClock) -> AsyncIterator[LedgerUnderTest]:
    ttl = timedelta(days=14)
    ledger = SqliteLedger(tmp_path / "ledger.sqlite", clock, ttl)

    @asynccontextmanager
    async def other_process() -> AsyncIterator[Ledger]:
        other = SqliteLedger(tmp_path / "ledger.sqlite", clock, ttl)
        try:
            yield other
        finally:
            await other.close()

    try:
        yield LedgerUnderTest(ledger, ttl, moving(clock), other_process=other_process)
    finally:
        await ledger.close()


@asynccontextmanager
async def namespaced_ledger(tmp_path: Path, clock: FakeClock) -> AsyncIterator[LedgerUnderTest]:
    """A second sink's share of the SQLite ledger (SINKS=local,powerbi: `powerbi/<key>`)."""
    async with sqlite_ledger(tmp_path, clock) as plain:
        other = plain.other_process
        assert other is not None

        @asynccontextmanager
        async def other_process() -> AsyncIterator[Ledger]:
            async with other() as store:
                yield NamespacedLedger(store, "powerbi/")

        yield LedgerUnderTest(
            NamespacedLedger(plain.ledger, "powerbi/"),
            plain.ttl,
            plain.pass_time,
            other_process=other_process,
        )


@asynccontextmanager
async def sqlite_warehouse(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SinkUnderTest]:
    warehouse = SqliteWarehouse(tmp_path / "warehouse.sqlite")
    try:
        yield SinkUnderTest(warehouse, warehouse.rows)
    finally:
        await warehouse.close()


@asynccontextmanager
async def static_roster(tmp_path: Path, agents: Sequence[RosterAgent]) -> AsyncIterator[Roster]:
    file = tmp_path / "roster.json"
    entries = [{"id": a.agent_id, "name": a.name, "email": a.email} for a in agents]
    file.write_text(json.dumps(entries))
    yield StaticRoster(agent_ids=[], file=file)


@asynccontextmanager
async def static_crm(tmp_path: Path, objects: Sequence[CrmObject]) -> AsyncIterator[CrmDirectory]:
    sections: dict[str, dict[str, Any]] = {"emails": {}, "tickets": {}}
    for obj in objects:
        sections[f"{obj.object_type}s"][obj.object_id] = {
            "owner_id": obj.owner_id,
            "owner_email": obj.owner_email,
            "direction": obj.direction,
            "status": obj.status,
            "created_at": obj.created_at.isoformat() if obj.created_at else None,
        }
    file = tmp_path / "crm.json"
    file.write_text(json.dumps(sections))
    yield StaticCrmDirectory(file)


# --- the vendor APIs, through their emulators on loopback -------------------------------------


@asynccontextmanager
async def aloware_roster(tmp_path: Path, agents: Sequence[RosterAgent]) -> AsyncIterator[Roster]:
    async with AlowareEmulator() as emulator, httpx.AsyncClient(timeout=2) as http:
        emulator.ring_groups["8465"] = [
            {"id": int(a.agent_id), "name": a.name, "email": a.email} for a in agents
        ]
        yield AlowareRoster(http, emulator.base_url, emulator.token, "8465", FakeClock())


@asynccontextmanager
async def hubspot_crm(tmp_path: Path, objects: Sequence[CrmObject]) -> AsyncIterator[CrmDirectory]:
    async with HubSpotEmulator() as emulator, httpx.AsyncClient(timeout=2) as http:
        for obj in objects:
            if obj.owner_id is not None and obj.owner_email is not None:
                emulator.add_owner(obj.owner_id, obj.owner_email)
            created = obj.created_at.isoformat(timespec="milliseconds") if obj.created_at else ""
            if obj.object_type == "email":
                emulator.add_email(
                    obj.object_id, obj.owner_id, obj.direction or "", obj.status or "", created
                )
            else:
                emulator.add_ticket(obj.object_id, obj.owner_id, created)
        yield HubSpotCrm(http, emulator.base_url, emulator.token, FakeClock(), backoff_sec=0.01)


# --- the extension point: one entry per adapter -----------------------------------------------

INBOX_FACTORIES: dict[str, StoreFactory] = {"sqlite": sqlite_inbox, "sqs": sqs_inbox}
LEDGER_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": sqlite_ledger,
    "dynamodb": dynamodb_ledger,
    "sqlite-namespaced": namespaced_ledger,
}
SINK_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": sqlite_warehouse,
    "powerbi": powerbi_sink_under_test,
    "fabric-eventhouse": eventhouse_sink_under_test,
    "fabric-eventstream": eventstream_sink_under_test,
}
ROSTER_FACTORIES: dict[str, RosterFactory] = {"static": static_roster, "aloware": aloware_roster}
CRM_FACTORIES: dict[str, CrmFactory] = {"static": static_crm, "hubspot": hubspot_crm}
BUDGET_FACTORIES: dict[str, BudgetFactory] = {
    "in-memory": in_memory_budget,
    "dynamodb": dynamodb_budget,
}


# --- fixtures the suites use ------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(INBOX_FACTORIES))
async def inbox_under_test(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[InboxUnderTest]:
    async with INBOX_FACTORIES[request.param](tmp_path, clock) as under_test:
        yield under_test


@pytest.fixture(params=sorted(LEDGER_FACTORIES))
async def ledger_under_test(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[LedgerUnderTest]:
    async with LEDGER_FACTORIES[request.param](tmp_path, clock) as under_test:
        yield under_test


@pytest.fixture(params=sorted(SINK_FACTORIES))
async def sink_under_test(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[SinkUnderTest]:
    async with SINK_FACTORIES[request.param](tmp_path, clock) as under_test:
        yield under_test


@pytest.fixture(params=sorted(ROSTER_FACTORIES))
def roster_factory(request: pytest.FixtureRequest) -> RosterFactory:
    return ROSTER_FACTORIES[request.param]


@pytest.fixture(params=sorted(CRM_FACTORIES))
def crm_factory(request: pytest.FixtureRequest) -> CrmFactory:
    return CRM_FACTORIES[request.param]

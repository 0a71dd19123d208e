"""The embedded stores (SQLite inbox, ledger and warehouse, static roster and CRM) in one
folder, wired as `IngestPorts`, and the dispositioned outbound call that counts for agent 42."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from pulse.adapters_out.sqlite.ledger import SqliteLedger
from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.adapters_out.static.crm import StaticCrmDirectory
from pulse.adapters_out.static.roster import StaticRoster
from pulse.core.ingest import IngestPorts
from pulse.core.model import IngestEnvelope
from pulse.ports.parser import EnvelopeParser

AGENT = "42"
RECEIVED = datetime(2025, 11, 5, 17, 22, 30, tzinfo=UTC)


def disposed_call(call_id: str, **fields: Any) -> dict[str, Any]:
    """Aloware's dispositioned outbound call by agent 42, `fields` replacing its own."""
    body: dict[str, Any] = {
        "id": call_id,
        "user_id": AGENT,
        "direction": "2",
        "type": "1",
        "disposition_status": "completed",
        "duration": "44",
        "created_at": "2025-11-05 17:22:28",
    }
    body.update(fields)
    return {"event": "OutboundPhoneCall-DispositionCompleted", "body": body}


def call_envelope(request_id: str, call_id: str, **fields: Any) -> IngestEnvelope:
    body = json.dumps(disposed_call(call_id, **fields)).encode()
    return IngestEnvelope(request_id, "aloware", RECEIVED, body, {})


@dataclass
class LocalStores:
    inbox: SqliteInbox
    ledger: SqliteLedger
    warehouse: SqliteWarehouse
    ports: IngestPorts

    @property
    def dead_letters(self) -> SqliteDeadLetters:
        return SqliteDeadLetters(self.inbox)

    async def counted(self) -> set[str]:
        return {r["EventKey"] for r in await self.warehouse.rows("FactEvent")}

    async def settled(self) -> bool:
        return (await self.inbox.stats()).depth == 0


@asynccontextmanager
async def local_stores(
    folder: Path,
    parsers: Mapping[str, EnvelopeParser],
    *,
    visibility: timedelta = timedelta(seconds=60),
    sink: Any = None,
) -> AsyncIterator[LocalStores]:
    """The stores under `folder`; `sink` wraps the warehouse when given (a callable of it)."""
    clock = SystemClock()
    inbox = SqliteInbox(folder / "inbox.sqlite", clock, visibility)
    ledger = SqliteLedger(folder / "ledger.sqlite", clock)
    warehouse = SqliteWarehouse(folder / "warehouse.sqlite")
    (folder / "crm.json").write_text("{}")
    ports = IngestPorts(
        parsers=parsers,
        inbox=inbox,
        dead_letters=SqliteDeadLetters(inbox),
        ledger=ledger,
        sink=sink(warehouse) if sink is not None else warehouse,
        roster=StaticRoster(agent_ids=[AGENT]),
        crm=StaticCrmDirectory(folder / "crm.json"),
    )
    try:
        yield LocalStores(inbox, ledger, warehouse, ports)
    finally:
        await inbox.close()
        await ledger.close()
        await warehouse.close()

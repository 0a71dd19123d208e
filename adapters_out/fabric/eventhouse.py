"""The Eventhouse sink (ports.sink.Sink, SINK=fabric-eventhouse) and its `pulse dataset` tool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from pulse.adapters_out.entra.tokens import TokenProvider
from pulse.adapters_out.fabric import kql
from pulse.adapters_out.fabric.config import EventhouseConfig
from pulse.adapters_out.fabric.kusto import KustoClient
from pulse.adapters_out.fabric.sending import Framing, Sender
from pulse.adapters_out.push.admission import Admission
from pulse.adapters_out.push.rows import RowEncoder
from pulse.core.errors import SinkPermanentError
from pulse.core.model import DimRow, FactEvent, Row
from pulse.core.schema import BY_NAME, FACT_EVENT, TABLES, Table, table_of

# A Kusto string value holds at most 1 MB; the request limit (4 MB) bounds a row anyway.
MAX_STRING_CHARS = 1_000_000
MULTIJSON = Framing(sep=b"\n")

Closer = Callable[[], Awaitable[None]]


class EventhouseSink:
    """Rows go to the KQL database by streaming ingestion (MultiJSON, ≤ max_request_bytes per
    request), so `append` returns once Kusto has them; repeats are harmless because the stored
    functions count distinct EventKeys. Dimension replace is one `.set-or-replace` command (a
    reader sees the old rows or the new, never none) unless the rows exceed
    `inline_replace_max_bytes`; then `.clear` + ingest, which a reader may see half-done."""

    def __init__(
        self,
        client: KustoClient,
        sender: Sender,
        *,
        mapping: str = "pulse_json",
        inline_replace_max_bytes: int = 1_000_000,
        drain_timeout_sec: float = 10.0,
        closers: Sequence[Closer] = (),
    ) -> None:
        self._drain_timeout = drain_timeout_sec
        self.client = client
        self.sender = sender
        self._mapping = mapping
        self._inline_max = inline_replace_max_bytes
        self._closers = tuple(closers)
        self._encoder = RowEncoder(max_string_chars=MAX_STRING_CHARS, sink="Kusto")
        self._table_locks: dict[str, asyncio.Lock] = {}
        self._gate = Admission("Eventhouse")

    @classmethod
    def from_config(
        cls,
        config: EventhouseConfig,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        drain_timeout_sec: float = 10.0,
    ) -> EventhouseSink:
        """The sink for the configured database; `close()` closes its HTTP client, not `tokens`
        (the caller's, closed after the sink)."""
        client = KustoClient.from_config(config, tokens, transport=transport)
        return cls(
            client,
            Sender.from_policy(config.sending, config.max_request_bytes, MULTIJSON),
            mapping=config.mapping_name,
            inline_replace_max_bytes=config.inline_replace_max_bytes,
            drain_timeout_sec=drain_timeout_sec,
            closers=(client.aclose,),
        )

    # --- FactSink ---------------------------------------------------------------------------

    async def append(self, facts: Sequence[FactEvent]) -> None:
        lines = [self._encoder.encode(f, FACT_EVENT).encode() for f in facts]
        async with self._gate.admitted():
            await self._ingest(FACT_EVENT, lines)

    async def ping(self) -> None:
        """Token and database reachable (for /readyz and `pulse check`)."""
        async with self._gate.admitted():
            await self.client.check_token()
            await self.client.mgmt(".show database cslschema")

    async def drain(self, budget_sec: float) -> None:
        """Refuse new calls and let admitted ones finish within the budget."""
        await self._gate.close(budget_sec)

    async def close(self) -> None:
        try:
            await self.drain(0.0 if self._gate.closing else self._drain_timeout)
        finally:
            for close in self._closers:
                await close()

    # --- DimensionSink ----------------------------------------------------------------------

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        by_table: dict[str, list[bytes]] = {}
        for row in rows:
            table = table_of(row)
            by_table.setdefault(table.name, []).append(self._encoder.encode(row, table).encode())
        async with self._gate.admitted():
            await asyncio.gather(
                *(self._locked_ingest(BY_NAME[name], lines) for name, lines in by_table.items())
            )

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        definition = _dimension(table, rows)
        values = [self._encoder.values(row, definition) for row in rows]
        async with self._gate.admitted(), self._lock(table):
            if not values:
                await self._mgmt(kql.clear_table(definition))
                return
            command = kql.set_or_replace(definition, values)
            if len(command.encode()) <= self._inline_max:
                await self._mgmt(command)
                return
            await self._mgmt(kql.clear_table(definition))
            await self._ingest(
                definition, [self._encoder.encode(row, definition).encode() for row in rows]
            )

    # --- plumbing ---------------------------------------------------------------------------

    def _lock(self, table: str) -> asyncio.Lock:
        return self._table_locks.setdefault(table, asyncio.Lock())

    async def _locked_ingest(self, table: Table, lines: list[bytes]) -> None:
        async with self._lock(table.name):  # not while a replace of the table runs
            await self._ingest(table, lines)

    async def _ingest(self, table: Table, lines: list[bytes]) -> None:
        async def post(body: bytes, rows: int) -> None:
            await self.client.ingest(table.name, self._mapping, body, rows)

        await self.sender.send(lines, post)

    async def _mgmt(self, csl: str) -> list[dict[str, Any]]:
        return await self.sender.retrying(lambda: self.client.mgmt(csl))

    def stats(self) -> dict[str, Any]:
        s = self.sender.stats
        return {
            "requests": s.requests,
            "retries": s.retries,
            "throttled_429": s.throttled,
            "unavailable": s.unavailable,
            "splits": s.splits,
            "bytes_sent": s.bytes_sent,
            "largest_request": s.largest_request,
        }


def _dimension(table: str, rows: Sequence[Row]) -> Table:
    definition = BY_NAME.get(table)
    if definition is None or definition is FACT_EVENT:
        raise SinkPermanentError(f"no dimension table {table!r} in the star schema")
    for row in rows:
        if table_of(row) is not definition:
            raise SinkPermanentError(f"a {type(row).__name__} row cannot go to {table}")
    return definition


# --- `pulse dataset ensure|show` for SINK=fabric-eventhouse ------------------------------------


def _parse_schema(text: str) -> dict[str, str]:
    columns: dict[str, str] = {}
    for part in text.split(","):
        name, _, kind = part.strip().partition(":")
        if name:
            columns[name.strip()] = kind.strip()
    return columns


class EventhouseDataset:
    """Creates and keeps the KQL database's side of the star schema: `.create-merge` tables
    (adds columns, never drops or retypes), JSON mappings, the streaming-ingestion policy, and
    the stored functions. Every command is idempotent, so `ensure` can run at every deploy."""

    def __init__(
        self,
        config: EventhouseConfig,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._transport = transport

    async def ensure(self) -> str:
        async with self._client() as client:
            plan, drift = await self._compare(client)
            applied: list[str] = []
            for table in TABLES:
                if any(d.startswith(f"{table.name}[") for d in drift):
                    continue  # `.create-merge` fails on a type conflict: reported, not forced
                if plan.get(table.name):
                    await client.mgmt(kql.create_merge_table(table))
                    applied.extend(plan[table.name])
                await client.mgmt(kql.create_mapping(table, self._config.mapping_name))
                await client.mgmt(kql.streaming_policy(table))
            for function in kql.FUNCTIONS:
                await client.mgmt(function.command())
            applied.append(
                f"json mapping {self._config.mapping_name!r} and streaming ingestion on "
                f"{len(TABLES)} tables; {len(kql.FUNCTIONS)} functions in folder {kql.FOLDER}"
            )
            return self._report(client, "ensured", applied, drift)

    async def show(self) -> str:
        async with self._client() as client:
            plan, drift = await self._compare(client)
            functions = {str(r.get("Name")) for r in await client.mgmt(".show functions")}
            pending = [change for changes in plan.values() for change in changes]
            pending += [
                f"create function {f.name}" for f in kql.FUNCTIONS if f.name not in functions
            ]
            return self._report(client, "found", [], drift, pending)

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[KustoClient]:
        client = KustoClient.from_config(self._config, self._tokens, transport=self._transport)
        try:
            yield client
        finally:
            await client.aclose()

    async def _compare(self, client: KustoClient) -> tuple[dict[str, list[str]], list[str]]:
        remote = {
            str(r["TableName"]): _parse_schema(str(r.get("Schema") or ""))
            for r in await client.mgmt(".show database cslschema")
        }
        plan: dict[str, list[str]] = {}
        drift: list[str] = []
        for table in TABLES:
            have = remote.get(table.name)
            if have is None:
                plan[table.name] = [f"create table {table.name}"]
                continue
            changes = []
            for column in table.columns:
                want = kql.KQL_TYPES[column.type]
                if column.name not in have:
                    changes.append(f"{table.name}: add column {column.name} ({want})")
                elif have[column.name] != want:
                    drift.append(
                        f"{table.name}[{column.name}] is {have[column.name]} in Kusto, the code "
                        f"says {want}: left as is (a type change needs the table rebuilt)"
                    )
            extra = [c for c in have if c not in table.column_names]
            drift += [f"{table.name}.{c} is not in the code: kept, with its data" for c in extra]
            plan[table.name] = changes
        return plan, drift

    def _report(
        self,
        client: KustoClient,
        verb: str,
        applied: list[str],
        drift: list[str],
        pending: Sequence[str] = (),
    ) -> str:
        lines = [f"KQL database {client.database!r} {verb} at {client.query_uri}"]
        lines += [f"  applied: {c}" for c in applied]
        lines += [f"  would apply: {c}" for c in pending]
        lines += [f"  drift: {d}" for d in drift]
        if verb == "found" and not (pending or drift):
            lines.append("  schema matches the code")
        return "\n".join(lines)

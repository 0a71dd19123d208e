"""Builds the Fabric sinks against their emulators the way the container builds them from
settings, and reads what a Fabric reader would see."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pulse.adapters_out.entra.tokens import ServicePrincipalAuth
from pulse.adapters_out.fabric.eventhouse import EventhouseDataset, EventhouseSink
from pulse.adapters_out.fabric.eventstream import (
    OP_FIELD,
    REPLACE_FIELD,
    REPLACE_ROWS_FIELD,
    TABLE_FIELD,
    EventstreamSink,
)
from pulse.bootstrap.settings import FabricSettings
from pulse.core.schema import BY_NAME
from tests.emulators.aad import signed_in
from tests.emulators.eventhubs import EventHubsEmulator, ReceivedEvent
from tests.emulators.kusto import KustoEmulator
from tests.fakes import FakeClock

FAST_RETRIES = {"retry_base_sec": 0.01, "retry_cap_sec": 0.05, "append_timeout_sec": 10}


def eventhouse_settings(emulator: KustoEmulator, **overrides: Any) -> FabricSettings:
    """FABRIC__* as an operator sets them; the query URI is the emulator's loopback URL and the
    authority host stays login.microsoftonline.com (`signed_in` reroutes it)."""
    values: dict[str, Any] = {
        "tenant_id": emulator.aad.tenant_id,
        "client_id": emulator.aad.client_id,
        "client_secret": SecretStr(emulator.aad.client_secret),
        "query_uri": emulator.url,
        "database": emulator.database,
        "timeout_sec": 10,
        **FAST_RETRIES,
    }
    values.update(overrides)
    return FabricSettings(**values)


async def ensure(emulator: KustoEmulator, *, show: bool = False, **overrides: Any) -> str:
    """`pulse dataset ensure` (or `show`) with SINK=fabric-eventhouse."""
    config = eventhouse_settings(emulator, **overrides).eventhouse_config()
    async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
        tool = EventhouseDataset(config, auth)
        return await (tool.show() if show else tool.ensure())


@asynccontextmanager
async def eventhouse_sink(
    emulator: KustoEmulator, *, ensured: bool = True, **overrides: Any
) -> AsyncIterator[EventhouseSink]:
    if ensured:
        await ensure(emulator)
    config = eventhouse_settings(emulator, **overrides).eventhouse_config()
    async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
        sink = EventhouseSink.from_config(config, auth)
        try:
            yield sink
        finally:
            await sink.close()


def eventstream_settings(hub: EventHubsEmulator, **overrides: Any) -> FabricSettings:
    values: dict[str, Any] = {
        "eventstream_connection_string": SecretStr(hub.connection_string),
        "timeout_sec": 10,
        **FAST_RETRIES,
    }
    values.update(overrides)
    return FabricSettings(**values)


@asynccontextmanager
async def eventstream_sink(
    hub: EventHubsEmulator, **overrides: Any
) -> AsyncIterator[EventstreamSink]:
    sink = EventstreamSink.from_config(
        eventstream_settings(hub, **overrides).eventstream_config(), transport=hub.transport()
    )
    try:
        yield sink
    finally:
        await sink.close()


def latest_per_key(table: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `Pulse<Dim>()` returns: the last ingested version of each key (facts as stored)."""
    rows = list(rows)
    if table == "FactEvent":
        return rows
    key = BY_NAME[table].key
    return list({row[key]: row for row in rows}.values())


def eventstream_destination(events: Iterable[ReceivedEvent], table: str) -> list[dict[str, Any]]:
    """A table as an Eventstream destination holds it, by the routing rule the README gives:
    facts are every `append`; a dimension is its latest *complete* `replace` (the marker's
    `PulseReplaceRows` rows with its `PulseReplaceId` have all arrived), then later upserts,
    latest version per key."""
    routed = [e for e in events if e.body.get(TABLE_FIELD) == table]
    for event in routed:  # what a routing rule reads without opening the body
        assert event.user_properties == {
            TABLE_FIELD: table,
            OP_FIELD: event.body[OP_FIELD],
        }

    def columns(event: ReceivedEvent) -> dict[str, Any]:
        return {k: v for k, v in event.body.items() if not k.startswith("Pulse")}

    if table == "FactEvent":
        return [columns(e) for e in routed if e.body[OP_FIELD] == "append"]
    start, base = 0, []
    for index, event in enumerate(routed):
        if event.body[OP_FIELD] != "replace":
            continue
        rows = [
            columns(e)
            for e in routed
            if e.body[OP_FIELD] == "replace-row"
            and e.body[REPLACE_FIELD] == event.body[REPLACE_FIELD]
        ]
        if len(rows) == event.body[REPLACE_ROWS_FIELD]:
            start, base = index, rows
    later = [columns(e) for e in routed[start:] if e.body[OP_FIELD] == "upsert"]
    return latest_per_key(table, [*base, *later])


# --- contract-suite factories (registered in tests/contract/conftest.py SINK_FACTORIES) --------


@asynccontextmanager
async def eventhouse_sink_under_test(tmp_path: Path, clock: FakeClock) -> AsyncIterator[object]:
    from tests.contract.conftest import SinkUnderTest

    async with KustoEmulator() as emulator, eventhouse_sink(emulator) as sink:

        async def rows(table: str) -> list[dict[str, Any]]:
            return latest_per_key(table, emulator.rows(table))

        yield SinkUnderTest(sink, rows)


@asynccontextmanager
async def eventstream_sink_under_test(tmp_path: Path, clock: FakeClock) -> AsyncIterator[object]:
    from tests.contract.conftest import SinkUnderTest

    async with EventHubsEmulator() as hub, eventstream_sink(hub) as sink:

        async def rows(table: str) -> list[dict[str, Any]]:
            return eventstream_destination(hub.events, table)

        yield SinkUnderTest(sink, rows)

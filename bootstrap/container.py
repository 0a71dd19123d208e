"""The composition root: the only module that names concrete adapters; picks them from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from adapters_in.metrics import Metrics
from adapters_in.sources.aloware import AlowareSource
from adapters_in.sources.hubspot import HubSpotSource
from adapters_out.clock import SystemClock
from adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from adapters_out.sqlite.ledger import SqliteLedger
from adapters_out.sqlite.warehouse import SqliteWarehouse
from adapters_out.static.crm import StaticCrmDirectory
from adapters_out.static.roster import StaticRoster
from bootstrap.daemon import Daemon
from bootstrap.settings import Settings
from core.ingest import IngestConfig, IngestPorts
from core.rules import Policy


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


# --- resources: each opens in dependency order and closes in reverse ---------------------


async def sqlite_inbox(settings: Settings, clock: SystemClock) -> AsyncIterator[SqliteInbox]:
    inbox = SqliteInbox(
        Path(settings.data_dir) / "inbox.sqlite",
        clock,
        timedelta(seconds=settings.inbox_visibility_sec),
    )
    yield inbox
    await inbox.close()


async def sqlite_ledger(settings: Settings, clock: SystemClock) -> AsyncIterator[SqliteLedger]:
    ledger = SqliteLedger(
        Path(settings.data_dir) / "ledger.sqlite", clock, timedelta(days=settings.ledger_ttl_days)
    )
    yield ledger
    await ledger.close()


async def local_warehouse(settings: Settings) -> AsyncIterator[SqliteWarehouse]:
    warehouse = SqliteWarehouse(Path(settings.data_dir) / "warehouse.sqlite")
    yield warehouse
    await warehouse.close()


def ingest_config(settings: Settings) -> IngestConfig:
    return IngestConfig(
        zone=settings.zone,
        shift_rules=settings.shift_rules(),
        goals=settings.goals.as_goals(),
        policy=Policy(count_failed_calls=settings.aloware_count_failed_calls),
        lease=timedelta(seconds=settings.ledger_lease_sec),
    )


def webhook_sources(settings: Settings) -> dict[str, Any]:
    return {
        "aloware": AlowareSource(
            auth=settings.aloware_auth, secret=_secret(settings.aloware_secret)
        ),
        "hubspot": HubSpotSource(
            client_secret=_secret(settings.hubspot_client_secret),
            auth=settings.hubspot_auth,
            allow_v1=settings.hubspot_allow_v1,
            max_age_ms=settings.hubspot_max_age_sec * 1000,
        ),
    }


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    __self__ = providers.Self()

    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)
    sources = providers.Singleton(webhook_sources, settings)

    inbox = providers.Selector(
        settings.provided.inbox,
        sqlite=providers.Resource(sqlite_inbox, settings, clock),
    )
    dead_letters = providers.Selector(
        settings.provided.inbox,
        sqlite=providers.Singleton(SqliteDeadLetters, inbox),
    )
    ledger = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Resource(sqlite_ledger, settings, clock),
    )
    warehouse = providers.Resource(local_warehouse, settings)
    sink = providers.Selector(
        settings.provided.sink,
        local=warehouse,
    )
    roster = providers.Selector(
        settings.provided.roster,
        static=providers.Singleton(
            StaticRoster,
            agent_ids=settings.provided.roster_agents,
            file=settings.provided.roster_file,
            ring_group_id=settings.provided.ring_group_id,
        ),
    )
    crm = providers.Selector(
        settings.provided.crm,
        static=providers.Singleton(StaticCrmDirectory, file=settings.provided.crm_file),
    )

    ingest_config = providers.Singleton(ingest_config, settings)
    ingest_ports = providers.Singleton(
        IngestPorts,
        parsers=sources,
        inbox=inbox,
        dead_letters=dead_letters,
        ledger=ledger,
        sink=sink,
        roster=roster,
        crm=crm,
    )
    daemon = providers.Factory(Daemon, container=__self__)
    health: providers.Singleton[dict[str, Any]] = providers.Singleton(
        dict,
        inbox=inbox,
        ledger=ledger,
        sink=sink,
    )

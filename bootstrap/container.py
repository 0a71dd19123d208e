"""The composition root: the only module that names concrete adapters; picks them from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from dependency_injector import containers, providers

from adapters_in.metrics import Metrics
from adapters_in.scheduler import ControlScheduler, Job, JobBoard
from adapters_in.sources.aloware import AlowareSource
from adapters_in.sources.hubspot import HubSpotSource
from adapters_out.aloware.roster import AlowareRoster
from adapters_out.clock import SystemClock
from adapters_out.dynamodb.client import dynamodb_client
from adapters_out.dynamodb.control import (
    DynamoAuditLog,
    DynamoJobLease,
    DynamoNonceStore,
    DynamoOwnerOverrides,
    DynamoVersionStore,
)
from adapters_out.hubspot.crm import HubSpotCrm
from adapters_out.sqlite.control import (
    SqliteAuditLog,
    SqliteJobLease,
    SqliteNonceStore,
    SqliteOwnerOverrides,
    SqliteVersionStore,
    open_control_db,
)
from adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from adapters_out.sqlite.ledger import SqliteLedger
from adapters_out.sqlite.warehouse import SqliteWarehouse
from adapters_out.static.crm import StaticCrmDirectory
from adapters_out.static.roster import StaticRoster
from bootstrap.daemon import Daemon
from bootstrap.settings import Settings
from core import control
from core.control import ControlConfig, ControlPorts
from core.dimensions import DateWindow
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


async def control_db(settings: Settings) -> AsyncIterator[Any]:
    db = open_control_db(Path(settings.data_dir) / "control.sqlite")
    yield db
    await db.close()


async def vendor_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One client for the Aloware and HubSpot APIs: pooled connections, one timeout."""
    async with httpx.AsyncClient(timeout=settings.vendor_timeout_sec) as client:
        yield client


def control_table(settings: Settings) -> str:
    return settings.dynamo_control_table or settings.dynamo_table


def control_config(settings: Settings) -> ControlConfig:
    return ControlConfig(
        zone=settings.zone,
        goals=settings.goals.as_goals(),
        window=DateWindow(settings.dim_date_back_days, settings.dim_date_ahead_days),
        ledger_lease=timedelta(seconds=settings.ledger_lease_sec),
    )


def control_jobs(settings: Settings, ports: ControlPorts, config: ControlConfig) -> list[Job]:
    """The nightly jobs: the same use cases the admin API and the CLI call."""

    async def sync(caller: control.Caller) -> control.Summary:
        return await control.sync_agents(ports, config, caller)

    async def extend(caller: control.Caller) -> control.Summary:
        return await control.extend_dates(ports, config, caller)

    return [
        Job("sync_agents", settings.sync_agents_cron, sync),
        Job("extend_dates", settings.extend_dates_cron, extend),
    ]


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
    vendor_http = providers.Resource(vendor_http, settings)
    control_db = providers.Resource(control_db, settings)
    dynamodb = providers.Resource(
        dynamodb_client,
        region=settings.provided.aws_region,
        endpoint_url=settings.provided.aws_endpoint_url,
    )
    dynamo_control_table = providers.Callable(control_table, settings)
    audit_log = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteAuditLog, control_db, clock),
        dynamodb=providers.Singleton(DynamoAuditLog, dynamodb, dynamo_control_table, clock),
    )
    versions = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteVersionStore, control_db, clock),
        dynamodb=providers.Singleton(DynamoVersionStore, dynamodb, dynamo_control_table, clock),
    )
    nonces = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteNonceStore, control_db, clock),
        dynamodb=providers.Singleton(DynamoNonceStore, dynamodb, dynamo_control_table, clock),
    )
    owner_overrides = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteOwnerOverrides, control_db, clock),
        dynamodb=providers.Singleton(DynamoOwnerOverrides, dynamodb, dynamo_control_table, clock),
    )
    job_leases = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteJobLease, control_db, clock),
        dynamodb=providers.Singleton(DynamoJobLease, dynamodb, dynamo_control_table, clock),
    )

    roster = providers.Selector(
        settings.provided.roster,
        static=providers.Singleton(
            StaticRoster,
            agent_ids=settings.provided.roster_agents,
            file=settings.provided.roster_file,
            ring_group_id=settings.provided.ring_group_id,
        ),
        aloware=providers.Singleton(
            AlowareRoster,
            client=vendor_http,
            base_url=settings.provided.aloware_base_url,
            token=providers.Callable(_secret, settings.provided.aloware_api_token),
            ring_group_id=settings.provided.ring_group_id,
            clock=clock,
            ttl=providers.Factory(timedelta, seconds=settings.provided.roster_ttl_sec),
        ),
    )
    crm = providers.Selector(
        settings.provided.crm,
        static=providers.Singleton(StaticCrmDirectory, file=settings.provided.crm_file),
        hubspot=providers.Singleton(
            HubSpotCrm,
            client=vendor_http,
            base_url=settings.provided.hubspot_base_url,
            token=providers.Callable(_secret, settings.provided.hubspot_access_token),
            clock=clock,
            overrides=owner_overrides,
            roster=roster,
            object_ttl=providers.Factory(timedelta, seconds=settings.provided.crm_ttl_sec),
        ),
    )

    # --- control plane (DESIGN §5): stores beside the ledger, use cases, scheduler ---------
    control_ports = providers.Singleton(
        ControlPorts,
        sink=sink,
        ledger=ledger,
        audit=audit_log,
        versions=versions,
        leases=job_leases,
        clock=clock,
        roster_source=roster,
        roster_cache=roster,
    )
    control_config = providers.Singleton(control_config, settings)
    job_board = providers.Singleton(JobBoard, metrics)
    scheduler = providers.Singleton(
        ControlScheduler,
        jobs=providers.Singleton(control_jobs, settings, control_ports, control_config),
        leases=job_leases,
        clock=clock,
        zone=settings.provided.zone,
        board=job_board,
        misfire_grace=providers.Factory(timedelta, seconds=settings.provided.job_misfire_grace_sec),
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

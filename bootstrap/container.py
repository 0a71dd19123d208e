"""The composition root: the only module that names concrete adapters; picks them from settings."""

from __future__ import annotations

import importlib
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dependency_injector import containers, providers

from pulse.adapters_in.breakers import Breakers
from pulse.adapters_in.cli.dataset import EachSinkDataset, NoDatasetNeeded
from pulse.adapters_in.edge_load import EdgeLoad
from pulse.adapters_in.housekeeping import Housekeeping
from pulse.adapters_in.http.app import build_app
from pulse.adapters_in.http.health import (
    Health,
    OperatorStatus,
    readiness_checks,
    sink_states,
)
from pulse.adapters_in.http.webhooks import WebhookEdge
from pulse.adapters_in.incidents import IncidentMonitor, SilenceRules
from pulse.adapters_in.instrumented import MeasuredLedger, MeasuredSink
from pulse.adapters_in.intake import StoreHealth, WebhookIntake
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.reconcile import reconcile_job
from pulse.adapters_in.scheduler import ControlScheduler, Job, JobBoard
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.adapters_in.worker import InboxWorkers
from pulse.adapters_out.alerts.none import NoAlerts
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.ledger_namespace import NamespacedLedger
from pulse.adapters_out.secrets.static import StaticSecrets
from pulse.adapters_out.sqlite.control import (
    SqliteAuditLog,
    SqliteJobLease,
    SqliteNonceStore,
    SqliteOwnerOverrides,
    SqliteRowCounts,
    SqliteVersionStore,
    open_control_db,
)
from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from pulse.adapters_out.sqlite.incidents import SqliteIncidentStore
from pulse.adapters_out.sqlite.ledger import SqliteLedger
from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.adapters_out.static.crm import StaticCrmDirectory
from pulse.adapters_out.static.roster import StaticRoster
from pulse.bootstrap.daemon import Daemon
from pulse.bootstrap.edge_processes import EdgeProcesses
from pulse.bootstrap.settings import Settings
from pulse.core import control
from pulse.core.control import ControlConfig, ControlPorts
from pulse.core.dead_letters import DeadLetterPorts, purge_expired
from pulse.core.dimensions import DateWindow
from pulse.core.incidents import IncidentRules
from pulse.core.ingest import IngestConfig, IngestPorts
from pulse.core.lanes import SinkLane
from pulse.core.reconcile import ReconcilePorts
from pulse.core.rules import Policy
from pulse.core.silence import from_shifts, parse_business_hours
from pulse.ports.secrets import Credential, SecretSource

if TYPE_CHECKING:  # each loads when its provider is first called: see `deferred`
    import httpx

    from pulse.adapters_in.http.admin.api import AdminApi
    from pulse.adapters_in.http.console.routes import Console
    from pulse.adapters_out.alerts.webhook import WebhookAlerts
    from pulse.adapters_out.dynamodb.control import DynamoBudgetStore
    from pulse.adapters_out.entra.config import EntraConfig
    from pulse.adapters_out.entra.tokens import ServicePrincipalAuth
    from pulse.adapters_out.fabric.config import EventhouseConfig, EventstreamConfig
    from pulse.adapters_out.fabric.eventhouse import EventhouseSink
    from pulse.adapters_out.fabric.eventstream import EventstreamSink
    from pulse.adapters_out.hubspot.crm import SearchLimits
    from pulse.adapters_out.powerbi.config import PowerBIConfig
    from pulse.adapters_out.powerbi.limiter import Timebase
    from pulse.adapters_out.powerbi.shared_budget import SharedBudget
    from pulse.adapters_out.powerbi.sink import PowerBISink
    from pulse.adapters_out.secrets.aws import SecretsManagerSecrets
    from pulse.adapters_out.sqs.client import SqsClient
    from pulse.adapters_out.sqs.inbox import SqsInbox

T = TypeVar("T")

DEFERRED: list[str] = []  # every target `deferred` was given (a test imports each)


def deferred(target: str) -> Callable[..., Any]:
    """`module:attribute` (a class, a function or `Class.method`), imported at the first call.
    The adapters that the embedded defaults never build (DynamoDB, SQS, Power BI, Fabric,
    Lambda, the vendor APIs, the admin API and console) are named so: `pulse serve` on those
    defaults never loads their modules, nor httpx, which were a sixth of its cold start."""
    DEFERRED.append(target)

    def call(*args: Any, **kwargs: Any) -> Any:
        return imported(target)(*args, **kwargs)

    call.__name__ = call.__qualname__ = target.partition(":")[2]
    return call


def deferred_object(target: str) -> providers.Callable[Any]:
    """The class or function `module:attribute` itself, imported when the provider is called."""
    DEFERRED.append(target)
    return providers.Callable(imported, target)


def imported(target: str) -> Any:
    """`module:attribute`, the module imported now."""
    module, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module)
    for name in attribute.split("."):
        found = getattr(found, name)
    return found


def dynamo_store(name: str) -> Callable[..., Any]:
    """A control-plane store of the DynamoDB table (`DynamoAuditLog`, …), imported when built."""
    return deferred(f"pulse.adapters_out.dynamodb.control:{name}")


async def aws_client(opener: str, **options: Any) -> AsyncIterator[Any]:
    """An AWS client from `opener` (a `deferred` async generator: DynamoDB's, SQS's)."""
    async with asynccontextmanager(deferred(opener))(**options) as client:
        yield client


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


# --- resources: each opens in dependency order and closes in reverse ---------------------


def aws_session() -> Any:
    """One aiobotocore session for the process's AWS clients: endpoints and credentials are
    resolved once, not per client (a Lambda cold start opens SQS and DynamoDB together)."""
    from aiobotocore.session import get_session

    return get_session()


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


async def sqs_inbox(
    settings: Settings, client: SqsClient, clock: SystemClock
) -> AsyncIterator[SqsInbox]:
    from pulse.adapters_out.sqs.inbox import SqsInbox

    inbox = SqsInbox(
        client,
        settings.sqs_queue,
        settings.sqs_dlq,
        clock,
        visibility=timedelta(seconds=settings.inbox_visibility_sec),
    )
    yield inbox
    await inbox.close()  # stops extending visibility before the client closes


async def local_warehouse(settings: Settings) -> AsyncIterator[SqliteWarehouse]:
    warehouse = SqliteWarehouse(Path(settings.data_dir) / "warehouse.sqlite")
    yield warehouse
    await warehouse.close()


async def store_in(make: Callable[..., T], home: Any, *args: Any) -> AsyncIterator[T]:
    """`make(home, *args)`, a store kept in `home` (a database, a client), as a Resource.
    dependency-injector closes a Resource only after the open Resources that name it directly
    (it does not look through a Singleton or a Selector), so a sink that names such a store
    closes (its batcher drains, writing the last counts) while the store's home is open."""
    yield make(home, *args)


async def entra_auth(
    kind: type[ServicePrincipalAuth],
    config: EntraConfig,
    secrets: SecretSource | None = None,
) -> AsyncIterator[ServicePrincipalAuth]:
    """One Entra ID client per sink and process (DESIGN §4 "Auth"), shared by the sink and its
    dataset tool; it closes after the sink, which names it. With `secrets`, the client secret
    is POWERBI__CLIENT_SECRET as the secret source has it now."""
    current = partial(secrets.current, Credential.POWERBI_CLIENT_SECRET) if secrets else None
    auth = kind.from_config(config, current_secret=current)
    try:
        yield auth
    finally:
        await auth.close()


async def powerbi_sink(
    config: PowerBIConfig,
    auth: ServicePrincipalAuth,
    timebase: Timebase,
    row_counts: Any,
    drain_timeout_sec: float,
    shared: SharedBudget | None = None,
) -> AsyncIterator[PowerBISink]:
    """The Power BI push sink (DESIGN §4), its table sizes kept in `row_counts`; with several
    replicas (`shared`), every PostRows also spends the dataset's one shared budget."""
    from pulse.adapters_out.powerbi.sink import PowerBISink

    sink = PowerBISink.from_config(
        config,
        auth,
        row_counts=row_counts,
        drain_timeout_sec=drain_timeout_sec,
        timebase=timebase,
        shared=shared,
    )
    try:
        yield sink
    finally:
        await sink.close()


async def eventhouse_sink(
    config: EventhouseConfig, auth: ServicePrincipalAuth, drain_timeout_sec: float
) -> AsyncIterator[EventhouseSink]:
    """Fabric Eventhouse streaming ingestion (DESIGN §8)."""
    from pulse.adapters_out.fabric.eventhouse import EventhouseSink

    sink = EventhouseSink.from_config(config, auth, drain_timeout_sec=drain_timeout_sec)
    try:
        yield sink
    finally:
        await sink.close()


async def eventstream_sink(
    config: EventstreamConfig, drain_timeout_sec: float
) -> AsyncIterator[EventstreamSink]:
    """Fabric Eventstream custom endpoint, Event Hubs HTTPS (DESIGN §8)."""
    from pulse.adapters_out.fabric.eventstream import EventstreamSink

    sink = EventstreamSink.from_config(config, drain_timeout_sec=drain_timeout_sec)
    try:
        yield sink
    finally:
        await sink.close()


async def sink_lanes(
    settings: Settings,
    ledger: Any,
    metrics: Metrics,
    first: Any,
    sinks: Mapping[str, Callable[[], Any]],
) -> tuple[SinkLane, ...]:
    """Each sink SINKS names (or SINK) with its ledger namespace: the first (`first`, the
    container's `sink`) keeps the plain keys, the others, opened from their provider in `sinks`,
    count under `<sink>/` (DESIGN §9)."""
    names = settings.sink_names
    lanes = []
    for index, name in enumerate(names):
        opened = sinks[name]() if index else first
        sink = await opened if inspect.isawaitable(opened) else opened
        namespaced = NamespacedLedger(ledger, f"{name}/") if index else ledger
        lanes.append(
            SinkLane(
                name,
                MeasuredLedger(namespaced, metrics),
                MeasuredSink(sink, metrics, name),
                "sink" if len(names) == 1 else f"sink:{name}",
            )
        )
    return tuple(lanes)


def ingest_ports(lanes: tuple[SinkLane, ...], **ports: Any) -> IngestPorts:
    """The first sink is also `ledger` and `sink` (what a dry run reads)."""
    return IngestPorts(ledger=lanes[0].ledger, sink=lanes[0].sink, lanes=lanes, **ports)


async def each_sink_dataset(
    settings: Settings, tools: Mapping[str, Callable[[], Any]]
) -> EachSinkDataset:
    """`pulse dataset` over the tool of each sink SINKS names (or SINK)."""
    opened = {}
    for name in settings.sink_names:
        tool = tools[name]()
        opened[name] = await tool if inspect.isawaitable(tool) else tool
    return EachSinkDataset(opened)


def ingest_config(settings: Settings) -> IngestConfig:
    return IngestConfig(
        zone=settings.zone,
        shift_rules=settings.shift_rules(),
        goals=settings.goals.as_goals(),
        policy=Policy(count_failed_calls=settings.aloware_count_failed_calls),
        ledger_lease=timedelta(seconds=settings.ledger_lease_sec),
    )


async def control_db(settings: Settings) -> AsyncIterator[Any]:
    db = open_control_db(Path(settings.data_dir) / "control.sqlite")
    yield db
    await db.close()


async def vendor_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One client for the Aloware and HubSpot APIs: pooled connections, one timeout."""
    import httpx

    async with httpx.AsyncClient(timeout=settings.vendor_timeout_sec) as client:
        yield client


async def alert_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient | None]:
    """The alert webhook's own client: a slow receiver never holds the vendor APIs' pool. None
    without ALERT_WEBHOOK_URL: a client loads the CA bundle, a tenth of a second of cold start."""
    if settings.alert_webhook_url is None:
        yield None
        return
    import httpx

    async with httpx.AsyncClient(timeout=settings.alert_timeout_sec) as client:
        yield client


def alerts(settings: Settings, client: httpx.AsyncClient | None) -> WebhookAlerts | NoAlerts:
    if settings.alert_webhook_url is None or client is None:
        return NoAlerts()
    from pulse.adapters_out.alerts.webhook import WebhookAlerts

    return WebhookAlerts(
        client,
        settings.alert_webhook_url.get_secret_value(),
        settings.alert_format,
        max_per_minute=settings.alert_max_per_minute,
    )


def silence_rules(settings: Settings) -> SilenceRules | None:
    """SILENCE__* in BUSINESS_HOURS, or in the SHIFTS' working times; None when all unset."""
    limits = settings.silence.limits()
    if not limits:
        return None
    if settings.business_hours:
        hours = parse_business_hours(settings.business_hours, settings.zone)
    else:
        hours = from_shifts(settings.shift_rules(), settings.zone)
    return SilenceRules(limits, hours)


def incident_monitor(
    settings: Settings, store: Any, clock: Any, alerts: Any, metrics: Metrics
) -> IncidentMonitor:
    monitor = IncidentMonitor(
        store,
        clock,
        IncidentRules(
            threshold=settings.incident_threshold,
            resolve_after=timedelta(seconds=settings.incident_resolve_after_sec),
        ),
        alerts,
        silence_rules(settings),
        settings.incident_check_every_sec,
    )
    metrics.gauge_source(monitor.gauges)
    return monitor


def control_table(settings: Settings) -> str:
    return settings.dynamo_control_table or settings.dynamo_table


def aws_infra(settings: Settings) -> Callable[[bool], Awaitable[list[str]]]:
    """`pulse infra create`: what LEDGER=dynamodb and INBOX=sqs need, named by the settings."""

    async def create(dry_run: bool) -> list[str]:
        dynamo = settings.ledger == "dynamodb"
        sqs = settings.inbox == "sqs"
        if not (dynamo or sqs):
            raise ValueError("nothing to create: set LEDGER=dynamodb and/or INBOX=sqs")
        from pulse.adapters_out.aws_infra import create_infra

        return await create_infra(
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            table=settings.dynamo_table if dynamo else None,
            control_table=control_table(settings) if dynamo else None,
            queue=settings.sqs_queue if sqs else None,
            dead_letter_queue=settings.sqs_dlq if sqs else None,
            max_receive_count=settings.sqs_max_receive_count,
            visibility_sec=math.ceil(settings.inbox_visibility_sec),
            dead_letter_retention_days=settings.dead_letter_retention_days,
            dry_run=dry_run,
        )

    return create


def checked_dependencies(
    health: dict[str, Any], ledger: Any, lanes: tuple[SinkLane, ...], **more: Any
) -> dict[str, Any]:
    """The health set, the ledger, each sink (`sink`, or `sink:<name>` beside others), plus each
    other store or vendor API that can be pinged (the static roster and CRM read local files
    and have nothing to probe)."""
    found = {**health, "ledger": ledger, **lane_sinks(lanes)}
    found.update({name: dep for name, dep in more.items() if callable(getattr(dep, "ping", None))})
    return found


def lane_sinks(lanes: tuple[SinkLane, ...]) -> dict[str, Any]:
    """Each sink by its breaker's name: what `pulse check` probes and the drain flushes."""
    return {lane.dependency: lane.sink for lane in lanes}


def control_config(settings: Settings) -> ControlConfig:
    return ControlConfig(
        zone=settings.zone,
        goals=settings.goals.as_goals(),
        shift_rules=settings.shift_rules(),
        window=DateWindow(settings.dim_date_back_days, settings.dim_date_ahead_days),
        ledger_lease=timedelta(seconds=settings.ledger_lease_sec),
    )


def control_jobs(
    settings: Settings,
    ports: ControlPorts,
    config: ControlConfig,
    letters: DeadLetterPorts,
    metrics: Metrics,
) -> list[Job]:
    """The nightly jobs: the same use cases the admin API and the CLI call."""

    async def sync(caller: control.Caller) -> control.Summary:
        return await control.sync_agents(ports, config, caller)

    async def extend(caller: control.Caller) -> control.Summary:
        return await control.extend_dates(ports, config, caller)

    async def purge(caller: control.Caller) -> control.Summary:
        retention = timedelta(days=settings.dead_letter_retention_days)
        summary = await purge_expired(letters, caller, retention)
        metrics.inc("dead_letters_purged_total", summary.counts["purged"])
        return summary

    return [
        Job("sync_agents", settings.sync_agents_cron, sync),
        Job("extend_dates", settings.extend_dates_cron, extend),
        Job("purge_dead_letters", settings.purge_dead_letters_cron, purge),
    ]


def scheduled_jobs(*groups: list[Job]) -> list[Job]:
    return [job for group in groups for job in group]


def search_limits(settings: Settings) -> SearchLimits:
    from pulse.adapters_out.hubspot.crm import SearchLimits

    return SearchLimits(interval_sec=1 / settings.hubspot_search_per_second)


def env_secrets(settings: Settings) -> StaticSecrets:
    """SECRETS_SOURCE=env: the values read at start; a `*_PREVIOUS` counts from start."""
    current = {
        Credential.ALOWARE_SECRET: _secret(settings.aloware_secret),
        Credential.HUBSPOT_CLIENT_SECRET: _secret(settings.hubspot_client_secret),
        Credential.ADMIN_HMAC_SECRET: _secret(settings.admin_hmac_secret),
        Credential.POWERBI_CLIENT_SECRET: _secret(settings.powerbi.client_secret),
        Credential.HUBSPOT_ACCESS_TOKEN: _secret(settings.hubspot_access_token),
        Credential.ALOWARE_API_TOKEN: _secret(settings.aloware_api_token),
    }
    window = settings.secrets.previous_valid_sec
    return StaticSecrets(current, settings.previous_values(), time.monotonic() + window)


async def aws_secrets(settings: Settings, session: Any) -> AsyncIterator[SecretsManagerSecrets]:
    """SECRETS_SOURCE=aws: read at start (a failure stops it), refreshed every SECRETS__TTL_SEC."""
    from pulse.adapters_out.secrets.aws import (
        SecretsManagerSecrets,
        kept_fresh,
        secretsmanager_client,
    )

    client = asynccontextmanager(secretsmanager_client)(
        settings.aws_region, settings.aws_endpoint_url, session=session
    )
    async with client as opened:
        source = SecretsManagerSecrets(
            opened,
            settings.secrets.ids(),
            ttl_sec=settings.secrets.ttl_sec,
            previous_valid_sec=settings.secrets.previous_valid_sec,
            fallback=env_secrets(settings),
        )
        async with asynccontextmanager(kept_fresh)(source) as fresh:
            yield fresh


def outbound(secrets: SecretSource, credential: Credential) -> Callable[[], str | None]:
    """An outbound credential read at use: a rotated token is sent from the next request on."""
    return partial(secrets.current, credential)


def webhook_sources(settings: Settings, secrets: SecretSource) -> dict[str, Any]:
    return {
        "aloware": AlowareSource(
            auth=settings.aloware_auth, secrets=partial(secrets.accepted, Credential.ALOWARE_SECRET)
        ),
        "hubspot": HubSpotSource(
            client_secrets=partial(secrets.accepted, Credential.HUBSPOT_CLIENT_SECRET),
            auth=settings.hubspot_auth,
            allow_v1=settings.hubspot_allow_v1,
            max_age_ms=settings.hubspot_max_age_sec * 1000,
        ),
    }


def shared_budget(
    store: DynamoBudgetStore, leases: Any, config: PowerBIConfig, timebase: Timebase
) -> SharedBudget:
    """The dataset's budget across replicas. They share wall time; an emulated clock (tests)
    is shared by every process that is handed it, so it stands in for wall time there."""
    from pulse.adapters_out.powerbi.limiter import RealTime
    from pulse.adapters_out.powerbi.shared_budget import SharedBudget

    now = time.time if isinstance(timebase, RealTime) else timebase.monotonic
    return SharedBudget(
        store,
        leases,
        config.budgets,
        now=now,
        sleep=timebase.sleep,
        slot_lease=timedelta(seconds=2 * config.timeout_sec + 10),
    )


def body_limit(configured: int, inbox: object) -> int:
    """BODY_LIMIT_BYTES, lowered to what the inbox can hold (SQS: a 256 KiB message)."""
    cap = getattr(inbox, "max_body_bytes", None)
    return min(configured, cap) if isinstance(cap, int) else configured


def admin_api(
    settings: Settings,
    ports: ControlPorts,
    config: ControlConfig,
    nonces: Any,
    status: OperatorStatus,
    letters: DeadLetterPorts,
    incidents: IncidentMonitor,
    secrets: SecretSource,
) -> AdminApi | None:
    """The signed admin API, or None: it is off unless ADMIN_HMAC_SECRET is set (or its
    Secrets Manager id)."""
    if not secrets.accepted(Credential.ADMIN_HMAC_SECRET):
        return None
    from pulse.adapters_in.http.admin import auth as admin_auth
    from pulse.adapters_in.http.admin.api import AdminApi

    return AdminApi(
        ports,
        config,
        nonces,
        partial(secrets.accepted, Credential.ADMIN_HMAC_SECRET),
        admin_auth.parse_networks(settings.admin_ip_allowlist),
        admin_auth.parse_networks(settings.trusted_proxies),
        status.snapshot,
        letters,
        incidents,
    )


def console(
    settings: Settings,
    nonces: Any,
    clock: SystemClock,
    audit: Any,
    status: OperatorStatus,
    letters: DeadLetterPorts,
    incidents: IncidentMonitor,
    warehouse: Any,
) -> Console | None:
    """The operator console, or None: off, like the admin API, without ADMIN_HMAC_SECRET. With a
    cloud sink its grid is a link to the workspace the numbers land in."""
    if settings.admin_hmac_secret is None:
        return None
    from pulse.adapters_in.http.console.routes import Console

    local = "local" in settings.sink_names
    return Console(
        settings.admin_hmac_secret.get_secret_value(),
        nonces,
        clock,
        audit,
        settings.zone,
        status.snapshot,
        incidents,
        letters,
        daily_rows=warehouse.daily_metrics if local else None,
        report_link="" if local else report_link(settings),
        secure_cookie=(settings.public_base_url or "").startswith("https://"),
    )


def report_link(settings: Settings) -> str:
    if settings.sink == "powerbi" and settings.powerbi.workspace_id:
        return f"https://app.powerbi.com/groups/{settings.powerbi.workspace_id}"
    return "https://app.fabric.microsoft.com/" if settings.sink.startswith("fabric") else ""


def writes_locally(settings: Settings) -> str:
    """`local` when one of the sinks is the local warehouse (the console's grid reads it)."""
    return "local" if "local" in settings.sink_names else "elsewhere"


def listening_fields(settings: Settings) -> dict[str, Any]:
    """What the "listening" log line says about the configuration."""
    return {
        "inbox": settings.inbox,
        "ledger": settings.ledger,
        "sink": ",".join(settings.sink_names),
        "workers": settings.workers,
    }


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    # monotonic seconds and sleep, for the Power BI limiter and batcher (DESIGN §4 budgets)
    timebase = providers.Singleton(deferred("pulse.adapters_out.powerbi.limiter:RealTime"))
    metrics = providers.Singleton(Metrics)
    aws = providers.Singleton(aws_session)
    secret_source = providers.Selector(
        settings.provided.secrets_source,
        env=providers.Singleton(env_secrets, settings),
        aws=providers.Resource(aws_secrets, settings, aws),
    )
    sources = providers.Singleton(webhook_sources, settings, secret_source)

    dynamodb = providers.Resource(
        aws_client,
        "pulse.adapters_out.dynamodb.client:dynamodb_client",
        region=settings.provided.aws_region,
        endpoint_url=settings.provided.aws_endpoint_url,
        session=aws,
    )
    sqs = providers.Resource(
        aws_client,
        "pulse.adapters_out.sqs.client:sqs_client",
        region=settings.provided.aws_region,
        endpoint_url=settings.provided.aws_endpoint_url,
        session=aws,
    )
    inbox = providers.Selector(
        settings.provided.inbox,
        sqlite=providers.Resource(sqlite_inbox, settings, clock),
        sqs=providers.Resource(sqs_inbox, settings, sqs, clock),
    )
    dead_letters = providers.Selector(
        settings.provided.inbox,
        sqlite=providers.Singleton(SqliteDeadLetters, inbox),
        sqs=providers.Singleton(
            deferred("pulse.adapters_out.sqs.dead_letters:SqsDeadLetters"), inbox
        ),
    )
    ledger = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Resource(sqlite_ledger, settings, clock),
        dynamodb=providers.Singleton(
            deferred("pulse.adapters_out.dynamodb.ledger:DynamoLedger"),
            dynamodb,
            settings.provided.dynamo_table,
            clock,
            ttl=providers.Factory(timedelta, days=settings.provided.dynamo_ttl_days),
        ),
    )
    infra = providers.Singleton(aws_infra, settings)
    warehouse = providers.Resource(local_warehouse, settings)
    vendor_http = providers.Resource(vendor_http, settings)
    control_db = providers.Resource(control_db, settings)
    dynamo_control_table = providers.Callable(control_table, settings)
    audit_log = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteAuditLog, control_db, clock),
        dynamodb=providers.Singleton(
            dynamo_store("DynamoAuditLog"), dynamodb, dynamo_control_table, clock
        ),
    )
    versions = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteVersionStore, control_db, clock),
        dynamodb=providers.Singleton(
            dynamo_store("DynamoVersionStore"), dynamodb, dynamo_control_table, clock
        ),
    )
    nonces = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteNonceStore, control_db, clock),
        dynamodb=providers.Singleton(
            dynamo_store("DynamoNonceStore"), dynamodb, dynamo_control_table, clock
        ),
    )
    owner_overrides = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteOwnerOverrides, control_db, clock),
        dynamodb=providers.Singleton(
            dynamo_store("DynamoOwnerOverrides"), dynamodb, dynamo_control_table, clock
        ),
    )
    job_leases = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteJobLease, control_db, clock),
        dynamodb=providers.Singleton(
            dynamo_store("DynamoJobLease"), dynamodb, dynamo_control_table, clock
        ),
    )
    incident_store = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Singleton(SqliteIncidentStore, control_db),
        dynamodb=providers.Singleton(
            deferred("pulse.adapters_out.dynamodb.incidents:DynamoIncidentStore"),
            dynamodb,
            dynamo_control_table,
            clock,
        ),
    )
    alert_http = providers.Resource(alert_http, settings)
    alerts = providers.Singleton(alerts, settings, alert_http)
    incidents = providers.Singleton(
        incident_monitor, settings, incident_store, clock, alerts, metrics
    )
    # the Power BI sink's table sizes, beside the ledger (each a Resource: see `store_in`)
    sqlite_row_counts = providers.Resource(store_in, SqliteRowCounts, control_db, clock)
    dynamo_row_counts = providers.Resource(
        store_in, dynamo_store("DynamoRowCounts"), dynamodb, dynamo_control_table, clock
    )

    # --- sinks (DESIGN §3, §4, §8) ----------------------------------------------------------
    powerbi_config = settings.provided.powerbi.config.call()
    powerbi_auth = providers.Resource(
        entra_auth,
        deferred_object("pulse.adapters_out.powerbi.auth:ServicePrincipalAuth"),
        powerbi_config.provided.entra,
        secrets=secret_source,
    )
    powerbi = providers.Selector(
        settings.provided.ledger,
        sqlite=providers.Resource(
            powerbi_sink,
            powerbi_config,
            powerbi_auth,
            timebase,
            sqlite_row_counts,
            settings.provided.drain_timeout_sec,
        ),
        dynamodb=providers.Resource(
            powerbi_sink,
            powerbi_config,
            powerbi_auth,
            timebase,
            dynamo_row_counts,
            settings.provided.drain_timeout_sec,
            providers.Singleton(
                shared_budget,
                providers.Singleton(
                    dynamo_store("DynamoBudgetStore"), dynamodb, dynamo_control_table, clock
                ),
                job_leases,
                powerbi_config,
                timebase,
            ),
        ),
    )
    eventhouse_config = settings.provided.fabric.eventhouse_config.call()
    eventhouse_auth = providers.Resource(
        entra_auth,
        deferred_object("pulse.adapters_out.entra.tokens:ServicePrincipalAuth"),
        eventhouse_config.provided.entra,
    )
    eventstream_config = settings.provided.fabric.eventstream_config.call()
    eventhouse = providers.Resource(
        eventhouse_sink, eventhouse_config, eventhouse_auth, settings.provided.drain_timeout_sec
    )
    eventstream = providers.Resource(
        eventstream_sink, eventstream_config, settings.provided.drain_timeout_sec
    )
    # the first sink (SINK, or SINKS' first): the control plane's and the checks' sink
    sink = providers.Selector(
        settings.provided.sink,
        local=warehouse,
        powerbi=powerbi,
        **{"fabric-eventhouse": eventhouse, "fabric-eventstream": eventstream},  # type: ignore[arg-type]
    )
    # every sink, each with its own ledger namespace and breaker (DESIGN §9); a sink's
    # provider is called only when SINKS names it
    lanes = providers.Singleton(
        sink_lanes,
        settings,
        ledger,
        metrics,
        sink,
        providers.Dict(
            {
                "local": warehouse.provider,
                "powerbi": powerbi.provider,
                "fabric-eventhouse": eventhouse.provider,
                "fabric-eventstream": eventstream.provider,
            }
        ),
    )
    # `pulse dataset ensure|show` for each configured sink
    dataset_tools = providers.Dict(
        {
            "local": providers.Singleton(
                NoDatasetNeeded,
                "local",
                "the local warehouse (DATA_DIR/warehouse.sqlite) creates its tables itself",
            ).provider,
            "powerbi": providers.Singleton(
                deferred("pulse.adapters_out.powerbi.dataset:PowerBIDatasetTool"),
                powerbi_config,
                powerbi_auth,
            ).provider,
            "fabric-eventhouse": providers.Singleton(
                deferred("pulse.adapters_out.fabric.eventhouse:EventhouseDataset"),
                eventhouse_config,
                eventhouse_auth,
            ).provider,
            "fabric-eventstream": providers.Singleton(
                deferred("pulse.adapters_out.fabric.eventstream:EventstreamDataset"),
                eventstream_config,
            ).provider,
        }
    )
    dataset_tool = providers.Singleton(each_sink_dataset, settings, dataset_tools)

    roster = providers.Selector(
        settings.provided.roster,
        static=providers.Singleton(
            StaticRoster,
            agent_ids=settings.provided.roster_agents,
            file=settings.provided.roster_file,
            ring_group_id=settings.provided.ring_group_id,
        ),
        aloware=providers.Singleton(
            deferred("pulse.adapters_out.aloware.roster:AlowareRoster"),
            client=vendor_http,
            base_url=settings.provided.aloware_base_url,
            token=providers.Callable(outbound, secret_source, Credential.ALOWARE_API_TOKEN),
            ring_group_id=settings.provided.ring_group_ids,
            clock=clock,
            ttl=providers.Factory(timedelta, seconds=settings.provided.roster_ttl_sec),
        ),
    )
    crm = providers.Selector(
        settings.provided.crm,
        static=providers.Singleton(StaticCrmDirectory, file=settings.provided.crm_file),
        hubspot=providers.Singleton(
            deferred("pulse.adapters_out.hubspot.crm:HubSpotCrm"),
            client=vendor_http,
            base_url=settings.provided.hubspot_base_url,
            token=providers.Callable(outbound, secret_source, Credential.HUBSPOT_ACCESS_TOKEN),
            clock=clock,
            overrides=owner_overrides,
            roster=roster,
            object_ttl=providers.Factory(timedelta, seconds=settings.provided.crm_ttl_sec),
            search=providers.Singleton(search_limits, settings),
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
        lanes=lanes,  # dimension rows go to every sink, each recorded in its namespace
    )
    control_config = providers.Singleton(control_config, settings)
    dead_letter_ports = providers.Singleton(
        DeadLetterPorts, dead_letters=dead_letters, audit=audit_log, clock=clock
    )
    job_board = providers.Singleton(JobBoard, metrics)
    ingest_config = providers.Singleton(ingest_config, settings)
    ingest_ports = providers.Singleton(
        ingest_ports,
        # ledger and sinks timed for /metrics and traced under the batch span (the control
        # plane's are not)
        lanes,
        parsers=sources,
        inbox=inbox,
        dead_letters=dead_letters,
        roster=roster,
        crm=crm,
        shifts=providers.Singleton(control.AppliedShiftRules, versions, clock),
    )
    # `pulse backfill hubspot` and the nightly reconcile: the CRM lists, ingest counts
    reconcile_ports = providers.Singleton(
        ReconcilePorts,
        listing=crm,
        ingest=ingest_ports,
        replay=sources.provided["hubspot"],
        audit=audit_log,
        leases=job_leases,
        clock=clock,
    )
    scheduler = providers.Singleton(
        ControlScheduler,
        jobs=providers.Callable(
            scheduled_jobs,
            providers.Singleton(
                control_jobs, settings, control_ports, control_config, dead_letter_ports, metrics
            ),
            providers.List(
                providers.Singleton(
                    reconcile_job,
                    settings.provided.reconcile_cron,
                    settings.provided.reconcile_days,
                    reconcile_ports,
                    ingest_config,
                    metrics,
                )
            ),
        ),
        leases=job_leases,
        clock=clock,
        zone=settings.provided.zone,
        board=job_board,
        misfire_grace=providers.Factory(timedelta, seconds=settings.provided.job_misfire_grace_sec),
    )
    # /readyz pings only what the edge needs to accept (the inbox): a sink or ledger outage
    # is held behind breakers while the edge keeps storing, so readiness stays 200 through it
    # (a load balancer that dropped us then would lose Aloware's webhooks, never retried).
    health: providers.Singleton[dict[str, Any]] = providers.Singleton(dict, inbox=inbox)
    # `pulse check` probes every configured dependency
    probes: providers.Singleton[dict[str, Any]] = providers.Singleton(
        checked_dependencies,
        health,
        ledger,
        lanes,
        roster=roster,
        crm=crm,
        control=audit_log,
    )

    # --- the daemon's parts (DESIGN §1): declared here, started and stopped by `Daemon` ----
    breakers = providers.Singleton(Breakers, clock, metrics)
    # With EDGE_PROCESSES > 1 it counts the first process's own requests: the workers share
    # that process (and its interpreter lock) with them, not with the others'
    edge_load = providers.Singleton(EdgeLoad, settings.provided.edge_busy_rps)
    workers = providers.Singleton(
        InboxWorkers,
        ingest_ports,
        ingest_config,
        clock,
        metrics,
        count=settings.provided.workers,
        batch_size=settings.provided.batch_size,
        max_attempts=settings.provided.max_attempts,
        breakers=breakers,
        hold_extension=providers.Factory(timedelta, seconds=settings.provided.inbox_visibility_sec),
        incidents=incidents,
        edge=edge_load,
        yield_sec=settings.provided.worker_yield_sec,
    )
    store_health = providers.Singleton(StoreHealth, clock)
    body_limit = providers.Callable(body_limit, settings.provided.body_limit_bytes, inbox)
    webhook_intake = providers.Singleton(
        WebhookIntake,
        sources,
        inbox,
        clock,
        metrics,
        # no exporter: no spans on the edge
        tracing=providers.Callable(bool, settings.provided.otel_exporter_otlp_endpoint),
        body_limit=body_limit,
    )
    # the daemon's edge adds its readiness and the silence alarm's hook (its monitor runs here)
    intake = providers.Singleton(
        replace, webhook_intake, store_health=store_health, activity=incidents.provided.saw
    )
    edge = providers.Singleton(
        WebhookEdge, intake, settings.provided.public_base_url, load=edge_load
    )
    # an extra edge process's (EDGE_PROCESSES): the first process runs the silence alarm,
    # told what the others stored (`edge_processes`)
    child_edge = providers.Singleton(
        WebhookEdge,
        providers.Singleton(replace, webhook_intake, store_health=store_health),
        settings.provided.public_base_url,
    )
    edge_processes = providers.Singleton(
        EdgeProcesses, settings.provided.edge_processes, saw=incidents.provided.saw
    )
    # Lambda mode (DESIGN §9, INBOX=sqs): API Gateway into the same checks and inbox; the SQS
    # event source mapping's records through the same workers' batch logic and breakers
    lambda_edge = providers.Singleton(
        deferred("pulse.adapters_in.aws_lambda.edge:LambdaEdge"),
        webhook_intake,
        settings.provided.public_base_url,
    )
    lambda_worker = providers.Singleton(
        deferred("pulse.adapters_in.aws_lambda.worker:LambdaWorker"),
        workers,
        providers.Singleton(
            partial, deferred("pulse.adapters_out.sqs.lambda_batch:LambdaBatch"), inbox
        ),
    )
    readiness = providers.Singleton(
        Health,
        health,
        metrics,
        checks=providers.Callable(readiness_checks, inbox, store_health, workers),
        sinks=providers.Callable(sink_states, breakers, lanes),
        elsewhere=edge_processes.provided.pages,
    )
    operator_status = providers.Singleton(OperatorStatus, job_board, breakers, inbox, incidents)
    admin_api = providers.Callable(
        admin_api,
        settings,
        control_ports,
        control_config,
        nonces,
        operator_status,
        dead_letter_ports,
        incidents,
        secret_source,
    )
    # the local warehouse is opened only when it is one of the sinks (the console's grid reads it)
    console_warehouse = providers.Selector(
        providers.Callable(writes_locally, settings),
        local=warehouse,
        elsewhere=providers.Object(None),
    )
    console = providers.Callable(
        console,
        settings,
        nonces,
        clock,
        audit_log,
        operator_status,
        dead_letter_ports,
        incidents,
        console_warehouse,
    )
    app = providers.Singleton(
        build_app,
        edge,
        readiness,
        body_limit,
        admin=admin_api,
        console=console,
    )
    housekeeping = providers.Singleton(Housekeeping, inbox, ledger, metrics)
    daemon = providers.Singleton(
        Daemon,
        app=app,
        workers=workers,
        scheduler=scheduler,
        sinks=providers.Callable(lane_sinks, lanes),
        housekeeping=housekeeping,
        roster=roster,
        clock=clock,
        drain_timeout_sec=settings.provided.drain_timeout_sec,
        describe=providers.Callable(listening_fields, settings),
        background=providers.List(incidents, alerts, edge_processes),
        edge_processes=edge_processes,
    )

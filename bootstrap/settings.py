"""Settings: env and `.env`, nested with `__`, validated once at start with one line per problem."""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import itertools
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, time, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from pulse.bootstrap.secret_settings import SecretSourceSettings
from pulse.core.errors import ValidationFailed
from pulse.core.model import Goal, MetricID, ShiftRule
from pulse.core.silence import parse_business_hours
from pulse.ports.secrets import Credential

if TYPE_CHECKING:  # a push sink's config modules load when it is configured (cold start)
    from pulse.adapters_out.entra.config import EntraConfig
    from pulse.adapters_out.fabric.config import EventhouseConfig, EventstreamConfig, SendPolicy
    from pulse.adapters_out.powerbi.config import PowerBIConfig

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx", "todo", "<secret>"}


def _empty_list() -> list[Any]:
    """An empty list default. Not the builtin `list`: pydantic reads a default factory's
    signature, and a builtin's is parsed from its text with tokenize (a few ms at start-up)."""
    return []


def _as_list(value: object) -> object:
    """A list setting as people write it: `42,43`, `42`, or JSON (`["42", "43"]`)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not a JSON list ({exc.msg}); or write values comma-separated"
            ) from None
    return [part.strip() for part in text.split(",") if part.strip()]


def _as_json_list(value: object) -> object:
    """A list of objects (SHIFTS): JSON only, one object or several."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f'not JSON ({exc.msg}): e.g. [{{"name": "Day", ...}}]') from None
    return parsed if isinstance(parsed, list) else [parsed]


# pydantic-settings would decode a list from env as JSON only, and fail with a traceback.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_as_list)]


def _placeholder(value: SecretStr | None, name: str) -> list[str]:
    if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
        return [f"{name} is a placeholder: set the real secret"]
    return []


def _text(value: str | SecretStr | None) -> str:
    """A setting's text, '' when unset (a sink's rules refuse it before a config is built)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value or ""


def _refuse(problems: list[str]) -> None:
    """No config from settings that break their rules: one line per problem."""
    if problems:
        raise SettingsError("\n".join(problems))


class SettingsPart(BaseModel):
    """A concern's settings; the docstring under a field is its meaning (.env.example, README:
    `setting_fields` reads it). Its schema is built when first validated: a part that is only
    a base of `Settings` never is."""

    model_config = ConfigDict(defer_build=True)


class GoalSettings(SettingsPart):
    """Default per-agent per-workday goals, used for a month no admin call has set (GOALS__CALLS=60)."""

    CALLS: float = Field(60, ge=0)
    """Default calls per agent per workday"""
    TEXTS: float = Field(40, ge=0)
    """Default texts per agent per workday"""
    EMAILS: float = Field(20, ge=0)
    """Default emails per agent per workday"""
    CASES: float = Field(5, ge=0)
    """Default cases per agent per workday"""
    yellow_floor_pct: float = Field(0.8, ge=0, le=1)
    """Attainment from this fraction of the goal is Yellow, below it Red"""

    def as_goals(self) -> dict[MetricID, Goal]:
        return {m: Goal(m, float(getattr(self, m.value)), self.yellow_floor_pct) for m in MetricID}


class ShiftSettings(SettingsPart):
    name: str
    start: time
    end: time
    days: list[int] = Field(default_factory=lambda: list(range(7)))


class EntraSettings(SettingsPart):
    """The Entra ID app a push sink signs in as, under the sink's prefix: POWERBI__TENANT_ID,
    FABRIC__CLIENT_SECRET, … (Power BI and the Eventhouse may use the same app).
    `timeout_sec` bounds the sign-in and the sink's own API calls alike."""

    ENV_PREFIX: ClassVar[str] = ""

    tenant_id: str | None = None
    """Entra ID tenant of the app the sink signs in as"""
    client_id: str | None = None
    """The app's client (application) id"""
    client_secret: SecretStr | None = None
    """The app's client secret"""
    authority_host: str = "https://login.microsoftonline.com"
    """Entra ID sign-in host"""
    scope: str
    """OAuth scope the sink's token is asked for"""
    timeout_sec: float = Field(30, gt=0)
    """Bounds the sign-in and each of the sink's API calls (seconds)"""

    def unset(self, *names: str) -> list[str]:
        """The variables among `names` (field names) left unset or empty."""
        return [f"{self.ENV_PREFIX}__{n.upper()}" for n in names if not _text(getattr(self, n))]

    def entra_config(self) -> EntraConfig:
        """The app as the adapters take it; call once the sink's rules hold."""
        from pulse.adapters_out.entra.config import EntraConfig

        return EntraConfig(
            tenant_id=_text(self.tenant_id),
            client_id=_text(self.client_id),
            client_secret=_text(self.client_secret),
            scope=self.scope,
            authority_host=self.authority_host,
            timeout_sec=self.timeout_sec,
        )


class PushSinkSettings(EntraSettings):
    """What the Power BI and Fabric settings share: the Entra ID app, and an append's wait,
    which the ledger lease must outlast."""

    append_timeout_sec: float

    def lease_problems(self, ledger_lease_sec: float) -> list[str]:
        # Under one fact claim a batch may wait twice: for the dimension rows its facts
        # refer to, then for the facts (DESIGN §2 step 6).
        longest = 2 * (self.append_timeout_sec + self.timeout_sec)
        if longest < ledger_lease_sec:
            return []
        prefix = self.ENV_PREFIX
        return [
            f"2 × ({prefix}__APPEND_TIMEOUT_SEC + {prefix}__TIMEOUT_SEC) = {longest:g} s, "
            "the longest a batch can wait for the sink (dimension rows, then facts), "
            f"must be below LEDGER_LEASE_SEC ({ledger_lease_sec:g} s): otherwise "
            "the lease lapses while the rows are pending and another worker can claim "
            "the same events"
        ]


class PowerBISettings(PushSinkSettings):
    """POWERBI__TENANT_ID, POWERBI__CLIENT_ID, … (DESIGN §4 limits are the defaults)."""

    ENV_PREFIX: ClassVar[str] = "POWERBI"

    workspace_id: str | None = None
    """The Power BI workspace (group) id the dataset lives in"""
    dataset_id: str | None = None
    """The push dataset's id; unset: found by DATASET_NAME (`pulse dataset ensure` prints it)"""
    dataset_name: str = "Pulse"
    """The push dataset's name"""
    api_base_url: str = "https://api.powerbi.com/v1.0/myorg"
    """Power BI REST API base URL"""
    scope: str = "https://analysis.windows.net/powerbi/api/.default"
    """OAuth scope of the Power BI token"""
    max_rows_per_request: int = Field(10_000, ge=1, le=10_000)
    """Rows per PostRows request (Power BI allows 10,000)"""
    requests_per_minute: int = Field(120, ge=1)
    """PostRows requests a minute per dataset (Power BI's limit)"""
    requests_per_hour_large: int = Field(120, ge=1)
    """PostRows requests an hour to a table past LARGE_TABLE_ROWS"""
    large_table_rows: int = Field(250_000, ge=1)
    """A table holding more rows than this gets the hourly request limit"""
    rows_per_hour: int = Field(1_000_000, ge=1)
    """Rows pushed an hour per dataset (Power BI's limit)"""
    max_pending: int = Field(5, ge=1)
    """PostRows requests in flight at once per dataset"""
    append_timeout_sec: float = Field(
        80,
        gt=0,
        description="Longest a batch waits for a PostRows slot; twice this plus TIMEOUT_SEC stays below LEDGER_LEASE_SEC",
    )

    def problems(self) -> list[str]:
        """SINK=powerbi's rules."""
        missing = self.unset("tenant_id", "client_id", "client_secret", "workspace_id")
        return [f"SINK=powerbi needs {', '.join(missing)}"] if missing else []

    def config(self) -> PowerBIConfig:
        """What the Power BI adapters take; SettingsError when SINK=powerbi's rules fail."""
        _refuse(self.problems())
        from pulse.adapters_out.powerbi.config import PowerBIConfig
        from pulse.adapters_out.powerbi.limiter import Budgets

        return PowerBIConfig(
            entra=self.entra_config(),
            workspace_id=_text(self.workspace_id),
            dataset_id=self.dataset_id,
            dataset_name=self.dataset_name,
            api_base_url=self.api_base_url,
            timeout_sec=self.timeout_sec,
            budgets=Budgets(
                requests_per_minute=self.requests_per_minute,
                requests_per_hour_large=self.requests_per_hour_large,
                large_table_rows=self.large_table_rows,
                rows_per_hour=self.rows_per_hour,
                max_pending=self.max_pending,
            ),
            max_rows_per_request=self.max_rows_per_request,
            append_timeout_sec=self.append_timeout_sec,
        )


class FabricSettings(PushSinkSettings):
    """FABRIC__QUERY_URI, FABRIC__DATABASE, … (DESIGN §8): Eventhouse and Eventstream sinks."""

    ENV_PREFIX: ClassVar[str] = "FABRIC"

    # Eventhouse (KQL database): the same Entra app as Power BI may be used, with Kusto's scope
    scope: str = "https://kusto.kusto.windows.net/.default"
    """OAuth scope of the Kusto (Eventhouse) token"""
    query_uri: str | None = Field(
        None, description="The Eventhouse's Query URI, https://<id>.z<n>.kusto.fabric.microsoft.com"
    )
    database: str | None = Field(None, description="The KQL database name")
    mapping_name: str = "pulse_json"
    """The Eventhouse ingestion mapping Pulse creates and uses"""
    max_request_bytes: int = Field(4_000_000, ge=1_024, le=4 * 1024 * 1024)
    """Largest Eventhouse ingest request (bytes)"""
    gzip_min_bytes: int = Field(8_192, ge=0)
    """An Eventhouse request larger than this is gzipped (bytes)"""
    inline_replace_max_bytes: int = Field(
        1_000_000, ge=0, description="A dimension replace up to this size is one atomic command"
    )
    # Eventstream custom endpoint (Event Hubs protocol)
    eventstream_connection_string: SecretStr | None = None
    """The Eventstream custom endpoint's Event Hub connection string"""
    eventstream_max_request_bytes: int = Field(1_000_000, ge=1_024, le=1024 * 1024)
    """Largest Eventstream send (bytes; Event Hubs allows 1 MiB)"""
    sas_ttl_sec: float = Field(3_600, ge=60)
    """Lifetime of the SAS token signed from the connection string (seconds)"""
    sas_renew_before_sec: float = Field(300, ge=0)
    """A SAS token is renewed this long before it expires (seconds)"""
    # both (and TIMEOUT_SEC)
    max_concurrency: int = Field(4, ge=1, le=64)
    """Appends in flight at once"""
    append_timeout_sec: float = Field(
        80,
        gt=0,
        description="Retries of one append stop after this; twice this plus TIMEOUT_SEC stays below LEDGER_LEASE_SEC",
    )
    retry_base_sec: float = Field(0.5, gt=0)
    """First wait before retrying a failed append; doubles each time"""
    retry_cap_sec: float = Field(30, gt=0)
    """Longest wait between retries of an append"""

    def eventhouse_problems(self) -> list[str]:
        """SINK=fabric-eventhouse's rules."""
        found = []
        missing = self.unset("tenant_id", "client_id", "client_secret", "query_uri", "database")
        if missing:
            found.append(f"SINK=fabric-eventhouse needs {', '.join(missing)}")
        if self.query_uri and not _https_or_loopback(self.query_uri):
            found.append("FABRIC__QUERY_URI must be an https:// URL (the Eventhouse's Query URI)")
        return found + _placeholder(self.client_secret, "FABRIC__CLIENT_SECRET")

    def eventstream_problems(self) -> list[str]:
        """SINK=fabric-eventstream's rules."""
        found = []
        if self.eventstream_connection_string is None:
            found.append(
                "SINK=fabric-eventstream needs FABRIC__EVENTSTREAM_CONNECTION_STRING "
                "(the custom endpoint's Event Hub connection string)"
            )
        else:
            from pulse.adapters_out.fabric.sas import parse_connection_string

            try:
                parse_connection_string(self.eventstream_connection_string.get_secret_value())
            except ValueError as exc:
                found.append(f"FABRIC__EVENTSTREAM_CONNECTION_STRING: {exc}")
        if self.sas_renew_before_sec >= self.sas_ttl_sec:
            found.append("FABRIC__SAS_RENEW_BEFORE_SEC must be shorter than FABRIC__SAS_TTL_SEC")
        return found

    def eventhouse_config(self) -> EventhouseConfig:
        """What the Eventhouse adapters take; SettingsError when its rules fail."""
        _refuse(self.eventhouse_problems())
        from pulse.adapters_out.fabric.config import EventhouseConfig

        return EventhouseConfig(
            entra=self.entra_config(),
            query_uri=_text(self.query_uri),
            database=_text(self.database),
            mapping_name=self.mapping_name,
            max_request_bytes=self.max_request_bytes,
            gzip_min_bytes=self.gzip_min_bytes,
            inline_replace_max_bytes=self.inline_replace_max_bytes,
            timeout_sec=self.timeout_sec,
            sending=self._send_policy(),
        )

    def eventstream_config(self) -> EventstreamConfig:
        """What the Eventstream adapters take; SettingsError when its rules fail."""
        _refuse(self.eventstream_problems())
        from pulse.adapters_out.fabric.config import EventstreamConfig
        from pulse.adapters_out.fabric.sas import parse_connection_string

        return EventstreamConfig(
            target=parse_connection_string(_text(self.eventstream_connection_string)),
            max_request_bytes=self.eventstream_max_request_bytes,
            sas_ttl_sec=self.sas_ttl_sec,
            sas_renew_before_sec=self.sas_renew_before_sec,
            timeout_sec=self.timeout_sec,
            sending=self._send_policy(),
        )

    def _send_policy(self) -> SendPolicy:
        from pulse.adapters_out.fabric.config import SendPolicy

        return SendPolicy(
            max_concurrency=self.max_concurrency,
            append_timeout_sec=self.append_timeout_sec,
            retry_base_sec=self.retry_base_sec,
            retry_cap_sec=self.retry_cap_sec,
        )


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    )


SinkName = Literal["local", "powerbi", "fabric-eventhouse", "fabric-eventstream"]


class SinkSettings(SettingsPart):
    """SINK or SINKS, and the push sinks' own settings (POWERBI__*, FABRIC__*)."""

    sink: SinkName = "local"
    """Where the star schema goes: local (SQLite warehouse), powerbi, fabric-eventhouse or fabric-eventstream"""
    sinks: Annotated[list[SinkName], NoDecode, BeforeValidator(_as_list)] = Field(
        default_factory=_empty_list,
        description="Several sinks at once (powerbi,fabric-eventhouse): every fact goes to each; "
        "the first keeps the ledger keys SINK had. Unset: SINK",
    )
    powerbi: PowerBISettings = PowerBISettings()
    fabric: FabricSettings = FabricSettings()

    @property
    def sink_names(self) -> tuple[str, ...]:
        """SINKS, or SINK alone: SINK=powerbi is SINKS=powerbi."""
        return tuple(self.sinks) or (self.sink,)

    def sink_problems(self, ledger_lease_sec: float) -> list[str]:
        """Each chosen sink's rules, and its wait against the ledger lease."""
        found: list[str] = []
        if len(set(self.sinks)) < len(self.sinks):
            found.append(f"SINKS names a sink twice: {','.join(self.sinks)}")
        if self.sinks and "sink" in self.model_fields_set and self.sink != self.sinks[0]:
            found.append(
                f"set SINK or SINKS, not both (SINK={self.sink}, SINKS={','.join(self.sinks)})"
            )
        for name in dict.fromkeys(self.sink_names):
            found += self._problems_of(name, ledger_lease_sec)
        return list(dict.fromkeys(found))

    def _problems_of(self, name: str, ledger_lease_sec: float) -> list[str]:
        chosen: PushSinkSettings
        if name == "powerbi":
            chosen, found = self.powerbi, self.powerbi.problems()
        elif name == "fabric-eventhouse":
            chosen, found = self.fabric, self.fabric.eventhouse_problems()
        elif name == "fabric-eventstream":
            chosen, found = self.fabric, self.fabric.eventstream_problems()
        else:
            return []
        return found + chosen.lease_problems(ledger_lease_sec)


class AlowareWebhookSettings(SecretSourceSettings):
    """How Aloware's webhooks authenticate, and which calls count."""

    aloware_auth: Literal["bearer", "basic", "none"] = "bearer"
    """How Aloware webhooks authenticate: bearer, basic, or none (explicit)"""
    aloware_secret: SecretStr | None = Field(
        None, description="Bearer token, or user:password for basic"
    )
    aloware_count_failed_calls: bool = False
    """Count failed calls whose agent leg never answered"""
    # False for commands that read only (report, check, listings): they take no webhook.
    WEBHOOK_SECRETS_REQUIRED: ClassVar[bool] = True

    def aloware_problems(self) -> list[str]:
        found = _placeholder(self.aloware_secret, "ALOWARE_SECRET")
        if (
            self.WEBHOOK_SECRETS_REQUIRED
            and self.aloware_auth != "none"
            and self.aloware_secret is None
            and not self.supplied(Credential.ALOWARE_SECRET)
        ):
            found.append(
                "ALOWARE_SECRET is not set: set it, or ALOWARE_AUTH=none to accept unauthenticated webhooks"
            )
        if (
            self.aloware_auth == "basic"
            and self.aloware_secret is not None
            and ":" not in self.aloware_secret.get_secret_value()
        ):
            found.append("ALOWARE_SECRET must be user:password when ALOWARE_AUTH=basic")
        return found


class HubSpotWebhookSettings(SecretSourceSettings):
    """How HubSpot's webhooks are signed (v3 over the public URL, a 5-minute window)."""

    hubspot_auth: Literal["v3", "none"] = "v3"
    """How HubSpot webhooks are checked: v3 signatures, or none (explicit)"""
    hubspot_client_secret: SecretStr | None = None
    """Your HubSpot app's client secret, which checks the v3 signatures"""
    hubspot_allow_v1: bool = False
    """Also accept v1 signatures"""
    hubspot_max_age_sec: int = Field(300, ge=1)
    """A v3 signature older than this is refused (seconds)"""
    WEBHOOK_SECRETS_REQUIRED: ClassVar[bool] = True

    def hubspot_problems(self) -> list[str]:
        found = _placeholder(self.hubspot_client_secret, "HUBSPOT_CLIENT_SECRET")
        if (
            self.WEBHOOK_SECRETS_REQUIRED
            and self.hubspot_auth != "none"
            and self.hubspot_client_secret is None
            and not self.supplied(Credential.HUBSPOT_CLIENT_SECRET)
        ):
            found.append(
                "HUBSPOT_CLIENT_SECRET is not set: set your app's client secret, or HUBSPOT_AUTH=none"
            )
        return found


class DirectorySettings(SecretSourceSettings):
    """ROSTER and CRM: who counts, and whose email a HubSpot owner has (DESIGN §6)."""

    roster: Literal["static", "aloware"] = "static"
    """Who counts: static (ROSTER_AGENTS or ROSTER_FILE) or aloware (the live ring-group roster)"""
    crm: Literal["static", "hubspot"] = "static"
    """Who owns a HubSpot email or ticket: static (CRM_FILE) or hubspot (the CRM API)"""
    # static roster and CRM (embedded defaults)
    roster_agents: CommaList = Field(
        default_factory=_empty_list,
        description="Agent ids; empty and no file = count everyone (warned)",
    )
    roster_file: Path | None = None
    """JSON file of agents: a list of {id,name,email}, or Aloware's availability response"""
    ring_group_id: str | None = Field(
        None, description="Aloware ring group id, or several comma-separated (8465,8470)"
    )
    crm_file: Path | None = None
    """JSON file of HubSpot emails and tickets with their owners (static CRM)"""
    # vendor APIs
    aloware_base_url: str = "https://app.aloware.com"
    """Aloware API base URL"""
    aloware_api_token: SecretStr | None = None
    """Aloware API token (ROSTER=aloware; redacted from logs)"""
    hubspot_base_url: str = "https://api.hubapi.com"
    """HubSpot API base URL"""
    hubspot_access_token: SecretStr | None = Field(None, description="Private-app token")
    hubspot_search_per_second: float = Field(
        4,
        gt=0,
        le=10,
        description="CRM search requests a second (HubSpot allows four per token), for backfill",
    )
    vendor_timeout_sec: float = Field(10, gt=0)
    """Timeout of each Aloware or HubSpot API call (seconds)"""
    roster_ttl_sec: float = Field(900, gt=0)
    """The live roster is fetched again after this many seconds"""
    crm_ttl_sec: float = Field(600, gt=0)
    """A HubSpot owner looked up is cached this many seconds"""

    @property
    def ring_group_ids(self) -> tuple[str, ...]:
        """RING_GROUP_ID as a list: a call center has several ring groups (teams)."""
        return tuple(g.strip() for g in (self.ring_group_id or "").split(",") if g.strip())

    def directory_problems(self) -> list[str]:
        found = []
        if self.roster == "aloware":
            if self.aloware_api_token is None and not self.supplied(Credential.ALOWARE_API_TOKEN):
                found.append("ROSTER=aloware needs ALOWARE_API_TOKEN")
            if not self.ring_group_ids:
                found.append("ROSTER=aloware needs RING_GROUP_ID")
        if (
            self.crm == "hubspot"
            and self.hubspot_access_token is None
            and not self.supplied(Credential.HUBSPOT_ACCESS_TOKEN)
        ):
            found.append("CRM=hubspot needs HUBSPOT_ACCESS_TOKEN (a private-app token)")
        return found


class AdminSettings(SecretSourceSettings):
    """The signed admin API (DESIGN §5) and whose X-Forwarded-For the edge believes."""

    admin_hmac_secret: SecretStr | None = Field(
        None, description="Signs admin requests; unset: the /admin routes are off"
    )
    admin_ip_allowlist: CommaList = Field(
        default_factory=_empty_list, description="CIDRs; empty: any"
    )
    trusted_proxies: CommaList = Field(
        default_factory=_empty_list, description="CIDRs whose X-Forwarded-For is believed"
    )

    def admin_problems(self) -> list[str]:
        found = _placeholder(self.admin_hmac_secret, "ADMIN_HMAC_SECRET")
        if (
            self.admin_hmac_secret is not None
            and len(self.admin_hmac_secret.get_secret_value()) < 32
        ):
            found.append("ADMIN_HMAC_SECRET must be at least 32 characters")
        for name, cidrs in (
            ("ADMIN_IP_ALLOWLIST", self.admin_ip_allowlist),
            ("TRUSTED_PROXIES", self.trusted_proxies),
        ):
            for cidr in cidrs:
                try:
                    ip_network(cidr, strict=False)
                except ValueError:
                    found.append(f"{name}: {cidr!r} is not an address or CIDR")
        return found


class ScheduleSettings(SettingsPart):
    """The nightly jobs (DESIGN §5) and the DimDate window they keep."""

    sync_agents_cron: str = Field("15 2 * * *", description="crontab, BUSINESS_TIMEZONE")
    extend_dates_cron: str = Field("30 2 * * *", description="crontab, BUSINESS_TIMEZONE")
    reconcile_cron: str = Field(
        "45 2 * * *",
        description="crontab, BUSINESS_TIMEZONE: HubSpot reconcile, after the agent sync",
    )
    reconcile_days: int = Field(
        3, ge=1, description="The nightly reconcile lists what was created in the last N days"
    )
    purge_dead_letters_cron: str = Field("0 3 * * *", description="crontab, BUSINESS_TIMEZONE")
    dead_letter_retention_days: int = Field(
        30,
        ge=1,
        description="Dead letters (raw bodies hold lead phone numbers) are purged after this;"
        " the SQS DLQ itself keeps a message 14 days at most",
    )
    job_misfire_grace_sec: int = Field(3600, ge=1)
    """A nightly job missed by up to this many seconds (the daemon was down) still runs"""
    dim_date_back_days: int = Field(730, ge=0)
    """DimDate reaches this many days before today"""
    dim_date_ahead_days: int = Field(365, ge=0)
    """DimDate reaches this many days after today"""

    def schedule_problems(self) -> list[str]:
        return [
            f"{name}: a crontab needs 5 fields (minute hour day month weekday)"
            for name, cron in (
                ("SYNC_AGENTS_CRON", self.sync_agents_cron),
                ("EXTEND_DATES_CRON", self.extend_dates_cron),
                ("RECONCILE_CRON", self.reconcile_cron),
                ("PURGE_DEAD_LETTERS_CRON", self.purge_dead_letters_cron),
            )
            if len(cron.split()) not in (5, 6)
        ]

    def reconcile_problems(self, ledger_ttl_days: int, ttl_name: str) -> list[str]:
        if self.reconcile_days < ledger_ttl_days:
            return []
        # A key past its TTL is gone from the ledger: a reconcile that reaches back that far
        # would take the object for new (the read side's distinct EventKey keeps the numbers).
        return [
            f"RECONCILE_DAYS ({self.reconcile_days}) must be below {ttl_name}"
            f" ({ledger_ttl_days}): the ledger forgets counted events after {ttl_name}"
        ]


class SilenceSettings(SettingsPart):
    """SILENCE__ALOWARE_MINUTES, SILENCE__HUBSPOT_MINUTES: unset, that source is never silent."""

    aloware_minutes: float | None = Field(None, gt=0)
    """Business minutes without an Aloware request that open silence:aloware; unset: off"""
    hubspot_minutes: float | None = Field(None, gt=0)
    """Business minutes without a HubSpot request that open silence:hubspot; unset: off"""

    def limits(self) -> dict[str, timedelta]:
        found = {"aloware": self.aloware_minutes, "hubspot": self.hubspot_minutes}
        return {s: timedelta(minutes=m) for s, m in found.items() if m is not None}


class IncidentSettings(SettingsPart):
    """Incidents, alerts and the silence alarm (DESIGN §7 "Knowing when something is wrong")."""

    alert_webhook_url: SecretStr | None = Field(
        None, description="Slack / Teams incoming webhook or any URL; unset: no alerts sent"
    )
    alert_format: Literal["slack", "teams", "json"] = "slack"
    """The alert message's shape: slack, teams or json"""
    alert_max_per_minute: int = Field(10, ge=1)
    """Alerts sent a minute at most (the rest wait)"""
    alert_timeout_sec: float = Field(10, gt=0)
    """Each try to send an alert gives up after this"""
    incident_threshold: int = Field(5, ge=1, description="Failures of one signature that open")
    incident_resolve_after_sec: float = Field(
        600, gt=0, description="Quiet (no failure) after which an incident resolves itself"
    )
    incident_check_every_sec: float = Field(15, gt=0)
    """How often the monitor records failures, checks silences and resolves quiet incidents"""
    business_hours: str | None = Field(
        None, description="'Mon-Fri 08:00-18:00' (BUSINESS_TIMEZONE); unset: the shift rules"
    )
    silence: SilenceSettings = SilenceSettings()

    def incident_problems(self) -> list[str]:
        found = _placeholder(self.alert_webhook_url, "ALERT_WEBHOOK_URL")
        url = _text(self.alert_webhook_url)
        if url and not _https_or_loopback(url):
            # never echo the URL itself: it is the secret
            found.append("ALERT_WEBHOOK_URL must be an https:// URL")
        if self.business_hours is not None:
            try:
                parse_business_hours(self.business_hours, UTC)
            except ValidationFailed as exc:
                found.append(str(exc))
        return found


class Settings(
    IncidentSettings,
    AlowareWebhookSettings,
    HubSpotWebhookSettings,
    DirectorySettings,
    SinkSettings,
    AdminSettings,
    ScheduleSettings,
    BaseSettings,
):
    """Every setting, each concern's in its own part (flat names: ALOWARE_SECRET, SINK, …;
    nested with `__`: POWERBI__TENANT_ID, GOALS__CALLS)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    # --- process ---
    host: str = "127.0.0.1"
    """Address the edge listens on"""
    port: int = Field(8080, ge=0, le=65535)
    """Port the edge listens on (0: a free one)"""
    data_dir: Path = Path("data")
    """Folder of the SQLite files (inbox, ledger, warehouse, control); relative: to the env file's folder"""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG, INFO, WARNING or ERROR: JSON lines on stderr"""
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector base URL; traces are exported only when set"
    )
    workers: int = Field(2, ge=1, le=64)
    """Inbox workers"""
    batch_size: int = Field(100, ge=1, le=1000)
    """Envelopes per batch"""
    worker_yield_sec: float = Field(30, ge=0)
    """Longest the workers hold back while the edge is saturated (its 202s first, counting catches up after); 0: never"""
    edge_busy_rps: float = Field(1500, ge=0)
    """Webhook requests a second from which the edge counts as saturated (WORKER_YIELD_SEC); 0: never"""
    edge_processes: int = Field(1, ge=1, le=64)
    """Processes answering webhooks on PORT (Linux SO_REUSEPORT): the first also runs the workers, scheduler and admin; the others pass it every other request"""
    drain_timeout_sec: float = Field(10, ge=0)
    """SIGTERM's whole budget: requests being stored, batches in progress, sink flush"""
    max_attempts: int = Field(
        5,
        ge=1,
        description="Deliveries of an envelope that crashes its batch before it is dead-lettered",
    )
    public_base_url: str | None = Field(
        None, description="URL senders use to reach Pulse (HubSpot signs it); default: request URL"
    )

    # --- adapters (DESIGN §6; SINK, ROSTER and CRM beside their own settings) ---
    inbox: Literal["sqlite", "sqs"] = "sqlite"
    """Where webhooks wait to be counted: sqlite (DATA_DIR) or sqs"""
    ledger: Literal["sqlite", "dynamodb"] = "sqlite"
    """What was counted, exactly once: sqlite (DATA_DIR) or dynamodb"""

    # --- edge ---
    body_limit_bytes: int = Field(1024 * 1024, ge=1024)
    """A larger webhook request gets 413"""
    inbox_visibility_sec: float = Field(60, gt=0)
    """A claimed envelope not acknowledged in this time is delivered again"""
    ledger_lease_sec: float = Field(240, gt=0)
    """A ledger claim lapses after this; it must outlast two sink waits"""
    ledger_ttl_days: int = Field(14, ge=1)
    """The SQLite ledger remembers a counted event this many days"""

    # --- business rules ---
    business_timezone: str = "UTC"
    """IANA zone for business dates and shifts"""
    goals: GoalSettings = GoalSettings()
    shifts: Annotated[list[ShiftSettings], NoDecode, BeforeValidator(_as_json_list)] = Field(
        default_factory=_empty_list, description='JSON: [{"name", "start", "end", "days"}]'
    )

    # --- AWS (issue: production stores) ---
    aws_endpoint_url: str | None = None
    """AWS endpoint override (LocalStack, moto); unset: AWS's own"""
    aws_region: str = "us-east-1"
    """AWS region of the DynamoDB table and the SQS queues"""
    dynamo_table: str = "pulse"
    """DynamoDB table of the ledger (LEDGER=dynamodb)"""
    dynamo_control_table: str | None = Field(
        None, description="Control-plane stores' table; unset: the ledger's table"
    )
    dynamo_ttl_days: int = Field(14, ge=1)
    """The DynamoDB ledger remembers a counted event this many days"""
    sqs_queue: str = "pulse-inbox"
    """SQS queue of the inbox (INBOX=sqs)"""
    sqs_dlq: str = "pulse-inbox-dlq"
    """SQS dead-letter queue of the inbox"""
    sqs_max_receive_count: int = Field(
        100,
        ge=1,
        description="SQS redrive to the DLQ after this many receives: a crash backstop only",
    )

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as America/New_York)"
            ) from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        problems = self.problems()
        if problems:
            raise ValueError("\n".join(problems))
        if self.sinks:
            self.sink = self.sinks[0]  # the first sink is the one SINK names everywhere
        return self

    def problems(self) -> list[str]:
        """Cross-field rules, each concern's own; every broken one is reported, not just the first."""
        return [
            *self.aloware_problems(),
            *self.hubspot_problems(),
            *self.admin_problems(),
            *self.secret_source_problems(),
            *self.schedule_problems(),
            *self.reconcile_problems(*self.ledger_ttl()),
            *self.directory_problems(),
            *self.sink_problems(self.ledger_lease_sec),
            *self.incident_problems(),
        ]

    # --- derived ---
    def unused(self) -> tuple[str, ...]:
        """The variables (a name, or a prefix ending in `_`) that the configured INBOX, LEDGER,
        SINK, ROSTER and CRM never read: `pulse check` leaves them out unless `--all`."""
        unused: list[str] = []
        if "powerbi" not in self.sink_names:
            unused.append("POWERBI__")
        if not any(name.startswith("fabric-") for name in self.sink_names):
            unused.append("FABRIC__")
        if self.inbox != "sqs":
            unused.append("SQS_")
        if self.ledger == "dynamodb":
            unused.append("LEDGER_TTL_DAYS")
        else:
            unused.append("DYNAMO_")
        if self.inbox != "sqs" and self.ledger != "dynamodb":
            unused.append("AWS_")
        aloware_api = ("ALOWARE_API_TOKEN", "ALOWARE_BASE_URL", "ROSTER_TTL_SEC")
        unused += ("ROSTER_AGENTS", "ROSTER_FILE") if self.roster == "aloware" else aloware_api
        hubspot_api = ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_BASE_URL", "HUBSPOT_SEARCH_PER_SECOND")
        unused += ("CRM_FILE",) if self.crm == "hubspot" else (*hubspot_api, "CRM_TTL_SEC")
        if self.roster != "aloware" and self.crm != "hubspot":
            unused.append("VENDOR_TIMEOUT_SEC")
        return tuple(unused)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.business_timezone)

    def ledger_ttl(self) -> tuple[int, str]:
        """How long the configured ledger keeps a counted event, and the setting that says so."""
        if self.ledger == "dynamodb":
            return self.dynamo_ttl_days, "DYNAMO_TTL_DAYS"
        return self.ledger_ttl_days, "LEDGER_TTL_DAYS"

    def shift_rules(self) -> tuple[ShiftRule, ...]:
        from pulse.core.calendar import ALL_DAY

        if not self.shifts:
            return (ALL_DAY,)
        return tuple(
            ShiftRule(
                key=s.name.upper().replace(" ", "_"),
                name=s.name,
                start=s.start,
                end=s.end,
                days=frozenset(s.days),
            )
            for s in self.shifts
        )


class ReadOnlySettings(Settings):
    """For the commands that take no webhook (report, check, listings): the webhook secrets
    may be unset, every other rule holds."""

    WEBHOOK_SECRETS_REQUIRED: ClassVar[bool] = False


class SettingsError(Exception):
    """Settings are wrong; `str()` is one readable line per problem."""


ENV_FILE_VARIABLE = "PULSE_ENV_FILE"


def load_settings(
    *, env_file: Path | None = None, read_only: bool = False, **overrides: object
) -> Settings:
    """Settings from the environment and `env_file` (default `./.env`). With an `env_file`
    named, a relative DATA_DIR is relative to its folder: the CLI works from anywhere."""
    kind = ReadOnlySettings if read_only else Settings
    try:
        settings = kind(_env_file=env_file or ".env", **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError("\n".join(_error_lines(exc))) from None
    except SourceError as exc:
        # A nested setting (GOALS, POWERBI, …) given whole as JSON that does not parse.
        raise SettingsError(_source_error_line(exc)) from None
    if env_file is not None and not settings.data_dir.is_absolute():
        settings.data_dir = env_file.parent / settings.data_dir
    return settings


def _error_lines(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        where = "__".join(str(p) for p in err["loc"]).upper()
        shown = f"{where}={_echo(where, err.get('input'))}" if where else ""
        for msg in err["msg"].removeprefix("Value error, ").splitlines():
            lines.append(f"{shown}: {msg}" if shown else msg)
    return lines


def _echo(name: str, value: Any) -> str:
    """The bad value as written, masked when the variable holds a secret."""
    if isinstance(value, SecretStr) or any(w in name for w in SECRET_WORDS):
        return "***"
    if isinstance(value, str):
        return value if value and value == value.strip() and len(value) <= 80 else repr(value)
    return json.dumps(value, default=str)[:80]


SECRET_WORDS = ("SECRET", "TOKEN", "CONNECTION_STRING", "PASSWORD")


def _source_error_line(exc: SourceError) -> str:
    text = str(exc)
    field = text.split('"')[1] if text.count('"') >= 2 else ""
    return f"{field.upper()}: not valid JSON ({text})" if field else text


def setting_fields(
    model: type[BaseModel] = Settings, prefix: str = "", *, meanings: bool = True
) -> Iterator[tuple[str, FieldInfo]]:
    """Every variable Pulse reads, as written (HOST, POWERBI__TENANT_ID, …), with its field
    (its meaning in `description`, unless `meanings=False`: then only what the model knows);
    a nested part (GOALS, POWERBI, FABRIC) gives its own fields, not itself."""
    fields = _documented(model) if meanings else model.model_fields
    for name, info in fields.items():
        variable = f"{prefix}{name.upper()}"
        part = info.annotation
        if isinstance(part, type) and issubclass(part, BaseModel):
            yield from setting_fields(part, f"{variable}__", meanings=meanings)
        else:
            yield variable, info


@functools.cache
def _documented(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The model's fields, each with its meaning: `description=`, else the docstring under the
    field in the class that declares it. Read from the source here, when a command or the
    docs ask, not at import: pydantic's `use_attribute_docstrings` parses each model's
    source as its class is made, a fifth of the daemon's cold start."""
    for name, info in model.model_fields.items():
        if info.description is None:
            owner = next(c for c in model.__mro__ if name in vars(c).get("__annotations__", {}))
            info.description = _attribute_docstrings(owner).get(name)
    return model.model_fields


@functools.cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """`name: type = ...` followed by a string, in the class body itself: {name: string}."""
    node = _classes_of(cls.__module__)[cls.__qualname__]
    return {
        field.target.id: inspect.cleandoc(doc.value.value)
        for field, doc in itertools.pairwise(node.body)
        if isinstance(field, ast.AnnAssign)
        and isinstance(field.target, ast.Name)
        and isinstance(doc, ast.Expr)
        and isinstance(doc.value, ast.Constant)
        and isinstance(doc.value.value, str)
    }


@functools.cache
def _classes_of(module: str) -> dict[str, ast.ClassDef]:
    """The classes a module defines at its top level, parsed from its source once."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _nested_parts() -> set[str]:
    return {
        name.upper()
        for name, info in Settings.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }


def unknown_settings(env_file: Path | None, environ: Mapping[str, str]) -> list[str]:
    """Variables that look meant for Pulse but that it does not read (a typo is otherwise
    silently ignored and the default used): every key of the env file, and environment
    variables under a nested part's prefix or close to one of Pulse's names (not PATH)."""
    parts = _nested_parts()
    fields = {name for name, _ in setting_fields(meanings=False)}
    known = fields | parts | {ENV_FILE_VARIABLE}
    path = env_file or Path(".env")
    in_file = [k.upper() for k in dotenv_values(path)] if path.is_file() else []
    found = [_unknown(k, known, 0.6) for k in in_file if not _read(k, known, fields)]
    for name in sorted(k.upper() for k in environ):
        if name in in_file or _read(name, known, fields):
            continue
        if any(name.startswith(f"{k}_") for k in fields):
            continue  # AWS_ENDPOINT_URL_SQS and the like belong to the SDKs
        if name.split("__")[0] in parts or difflib.get_close_matches(name, known, 1, 0.85):
            found.append(_unknown(name, known, 0.85))
    return found


def _read(name: str, known: set[str], fields: set[str]) -> bool:
    """Pulse reads `name`: a setting, or a key inside a list or mapping one (SHIFTS__0__NAME)."""
    return name in known or ("__" in name and name.split("__")[0] in fields)


def _unknown(name: str, known: set[str], cutoff: float) -> str:
    close = difflib.get_close_matches(name, known, 1, cutoff)
    return f"unknown setting {name}" + (f" — did you mean {close[0]}?" if close else "")

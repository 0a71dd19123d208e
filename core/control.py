"""The control-plane use cases: sync agents, extend dates, apply metrics, apply shifts (DESIGN §5)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from core import calendar
from core.dimensions import (
    AgentsDocument,
    DateWindow,
    Diff,
    MetricsDocument,
    ShiftsDocument,
    diff_rows,
    dimension_key,
    metric_rows,
    months_between,
    push_once,
)
from core.errors import PulseError, ValidationFailed
from core.model import DimRow, Goal, MetricID, ShiftRule
from core.records import AppliedVersion, AuditRecord

if TYPE_CHECKING:
    from ports.clock import Clock
    from ports.control import AuditLog, JobLease, VersionStore
    from ports.ledger import Ledger
    from ports.roster_source import RosterCache, RosterSource
    from ports.sink import DimensionSink

LEDGER_CHUNK = 500  # keys per ledger claim: a DynamoDB batch and a SQLite statement stay small

Progress = Callable[[int, int], None]


class Busy(PulseError):
    """Another caller (maybe another replica) is rewriting the same dimension right now."""


class StaleVersion(ValidationFailed):
    """The payload's version is not newer than the one applied; nothing was written."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks (`admin@10.0.0.5`, `cli:alice`, `scheduler`) and the lease owner id of this run."""

    who: str
    owner: str


@dataclass(frozen=True, slots=True)
class ControlConfig:
    zone: tzinfo
    workdays: frozenset[int] = frozenset(range(5))
    goals: Mapping[MetricID, Goal] = field(default_factory=dict)
    window: DateWindow = field(default_factory=DateWindow)
    lease_ttl: timedelta = timedelta(minutes=10)
    ledger_lease: timedelta = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class ControlPorts:
    sink: DimensionSink
    ledger: Ledger
    audit: AuditLog
    versions: VersionStore
    leases: JobLease
    clock: Clock
    roster_source: RosterSource | None = None
    roster_cache: RosterCache | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """What one control-plane call did (or, dry, would do)."""

    action: str
    outcome: str  # applied | dry_run | unchanged | skipped: …
    dry_run: bool
    counts: Mapping[str, int]
    duration_sec: float
    version: int | None = None
    changes: tuple[str, ...] = ()

    def line(self) -> str:
        counts = " · ".join(f"{v:,} {k}" for k, v in self.counts.items())
        version = f" · v{self.version}" if self.version is not None else ""
        return f"{self.action}: {self.outcome} · {counts}{version} · {self.duration_sec:.2f} s"

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "outcome": self.outcome,
            "dryRun": self.dry_run,
            "counts": dict(self.counts),
            "version": self.version,
            "changes": list(self.changes),
            "durationSec": round(self.duration_sec, 3),
        }


def payload_hash(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


# ---- the use cases ---------------------------------------------------------------------------


async def sync_agents(
    ports: ControlPorts, config: ControlConfig, caller: Caller, *, dry_run: bool = False
) -> Summary:
    """Roster → DimAgent (today's agents active, earlier ones kept inactive) → replace → gate."""
    started = ports.clock.now()
    action = "sync_agents"
    if ports.roster_source is None:
        raise ValidationFailed("ROSTER: no roster source is configured")
    snapshot = await ports.roster_source.fetch()
    if snapshot.count_everyone:
        # Replacing DimAgent now would drop the rows ingest wrote for every agent it saw.
        summary = _summary(
            action, "skipped: allow-all roster", dry_run, {"agents": 0}, ports, started
        )
        await _audit(ports, caller, summary, payload_hash(""))
        return summary
    stored = await ports.versions.get(AgentsDocument.name)
    known = AgentsDocument.from_json(stored.body) if stored else AgentsDocument((), frozenset())
    if not snapshot.agents:
        raise ValidationFailed(
            "roster: the roster source answered no agents; refusing to deactivate"
            f" {len(known.active)} agent(s)"
        )
    now = ports.clock.now()
    document = known.merged(snapshot)
    rows = document.rows(now)
    change = diff_rows(known.rows(now), rows, ignore=("SyncedAt",))
    version = (stored.version if stored else 0) + 1
    counts = {"rows": len(rows), "active": len(document.active), **change.counts()}

    async def refresh_gate() -> None:
        if ports.roster_cache is not None:
            await ports.roster_cache.refresh(snapshot)

    return await _apply(
        ports,
        config,
        caller,
        action,
        "DimAgent",
        rows,
        change,
        counts,
        version,
        document.to_json(),
        dry_run,
        started,
        document=document.name,
        after=refresh_gate,
    )


async def extend_dates(
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Push every DimDate row of the rolling window not pushed yet (through the ledger)."""
    started = ports.clock.now()
    today = calendar.business_date(started, config.zone)
    first, last = config.window.around(today)
    rows = calendar.dim_dates(first, last, config.workdays)
    counts = {"window": len(rows), "pushed": 0, "already": 0}
    if dry_run:
        summary = _summary(
            "extend_dates",
            "dry_run",
            True,
            counts,
            ports,
            started,
            changes=(f"window {first.isoformat()} … {last.isoformat()} ({len(rows)} days)",),
        )
        await _audit(ports, caller, summary, payload_hash(f"{first}..{last}"))
        return summary
    async with _lease(ports, config, caller, "DimDate"):
        for done, chunk in enumerate(_chunks(rows, LEDGER_CHUNK)):
            pushed, already = await push_once(chunk, ports.ledger, ports.sink, config.ledger_lease)
            counts["pushed"] += pushed
            counts["already"] += already
            if progress is not None:
                progress(min((done + 1) * LEDGER_CHUNK, len(rows)), len(rows))
    outcome = "applied" if counts["pushed"] else "unchanged"
    summary = _summary(
        "extend_dates",
        outcome,
        False,
        counts,
        ports,
        started,
        changes=(f"window {first.isoformat()} … {last.isoformat()}",),
    )
    await _audit(ports, caller, summary, payload_hash(f"{first}..{last}"))
    return summary


async def apply_metrics(
    document: MetricsDocument,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
) -> Summary:
    """Validate → version check → rewrite DimMetric from every stored month → audit.

    Months no operator set keep default-goal rows (Version 0) for the whole calendar window, so
    the rewrite never drops the rows ingest pushed for months facts reference."""
    started = ports.clock.now()
    document.validate()
    digest = payload_hash(document.to_json())
    stored = await ports.versions.get(document.name)
    await _refuse_stale(ports, caller, "apply_metrics", document.version, stored, digest, started)
    others = [
        MetricsDocument.from_json(v.body)
        for v in await ports.versions.get_all("dim_metric:")
        if v.document != document.name
    ]
    months = months_between(*config.window.around(calendar.business_date(started, config.zone)))
    before = metric_rows(
        [*others, *([MetricsDocument.from_json(stored.body)] if stored else [])],
        config.goals,
        months,
    )
    rows = metric_rows([*others, document], config.goals, months)
    change = diff_rows(before, rows)
    counts = {"rows": len(rows), "months": len({r.Month for r in rows}), **change.counts()}
    return await _apply(
        ports,
        config,
        caller,
        "apply_metrics",
        "DimMetric",
        rows,
        change,
        counts,
        document.version,
        document.to_json(),
        dry_run,
        started,
        document=document.name,
    )


async def apply_shifts(
    document: ShiftsDocument,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
) -> Summary:
    """Validate the rules (each local minute → exactly one shift or Unassigned) → replace DimShift."""
    started = ports.clock.now()
    document.validate()
    digest = payload_hash(document.to_json())
    stored = await ports.versions.get(document.name)
    await _refuse_stale(ports, caller, "apply_shifts", document.version, stored, digest, started)
    before = ShiftsDocument.from_json(stored.body).rows() if stored else []
    rows = document.rows()
    change = diff_rows(before, rows)
    counts = {"rows": len(rows), **change.counts()}
    return await _apply(
        ports,
        config,
        caller,
        "apply_shifts",
        "DimShift",
        rows,
        change,
        counts,
        document.version,
        document.to_json(),
        dry_run,
        started,
        document=document.name,
    )


# ---- shared steps ----------------------------------------------------------------------------


async def _apply(
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    action: str,
    table: str,
    rows: Sequence[DimRow],
    change: Diff,
    counts: dict[str, int],
    version: int,
    body: str,
    dry_run: bool,
    started: datetime,
    *,
    document: str,
    after: Callable[[], Any] | None = None,
) -> Summary:
    """Dry: report. Else, under the dimension's lease: replace the table, store the document,
    mark the rows pushed in the ledger (so ingest never overwrites them with defaults), audit."""
    digest = payload_hash(body)
    if dry_run:
        summary = _summary(action, "dry_run", True, counts, ports, started, version, change.details)
        await _audit(ports, caller, summary, digest)
        return summary
    async with _lease(ports, config, caller, table):
        await ports.sink.replace(table, rows)
        stored = await ports.versions.put(
            AppliedVersion(document, version, body, ports.clock.now())
        )
        if not stored:
            raise StaleVersion(f"{document}: version {version} was overtaken while applying")
        await _mark_pushed(ports, config, rows)
        if after is not None:
            await after()
    summary = _summary(action, "applied", False, counts, ports, started, version, change.details)
    await _audit(ports, caller, summary, digest)
    return summary


async def _refuse_stale(
    ports: ControlPorts,
    caller: Caller,
    action: str,
    version: int,
    stored: AppliedVersion | None,
    digest: str,
    started: datetime,
) -> None:
    if stored is None or version > stored.version:
        return
    message = (
        f"version: {version} is not newer than the applied version {stored.version} of"
        f" {stored.document} (applied {stored.applied_at.isoformat()}); send version"
        f" {stored.version + 1} or more"
    )
    await ports.audit.append(
        AuditRecord(
            who=caller.who,
            when=started,
            action=action,
            payload_hash=digest,
            outcome="stale",
            version=version,
            duration_sec=(ports.clock.now() - started).total_seconds(),
        )
    )
    raise StaleVersion(message)


class _lease:
    """Single flight per dimension across replicas and entry points (admin, CLI, scheduler)."""

    def __init__(
        self, ports: ControlPorts, config: ControlConfig, caller: Caller, table: str
    ) -> None:
        self.ports, self.config, self.caller = ports, config, caller
        self.name = f"control:{table}"

    async def __aenter__(self) -> None:
        if not await self.ports.leases.acquire(self.name, self.caller.owner, self.config.lease_ttl):
            raise Busy(f"{self.name} is being applied by another caller; try again shortly")

    async def __aexit__(self, *exc: object) -> None:
        await self.ports.leases.release(self.name, self.caller.owner)


async def _mark_pushed(ports: ControlPorts, config: ControlConfig, rows: Sequence[DimRow]) -> None:
    """After a replace, the rows are in the sink: record their keys DONE in the ledger."""
    for chunk in _chunks(list(rows), LEDGER_CHUNK):
        claim = await ports.ledger.claim([dimension_key(r) for r in chunk], config.ledger_lease)
        if claim.claimed:
            await ports.ledger.commit(claim, forever=True)


def _chunks(rows: Sequence[DimRow], size: int) -> list[Sequence[DimRow]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _summary(
    action: str,
    outcome: str,
    dry_run: bool,
    counts: Mapping[str, int],
    ports: ControlPorts,
    started: datetime,
    version: int | None = None,
    changes: Sequence[str] = (),
) -> Summary:
    return Summary(
        action=action,
        outcome=outcome,
        dry_run=dry_run,
        counts=dict(counts),
        duration_sec=(ports.clock.now() - started).total_seconds(),
        version=version,
        changes=tuple(changes),
    )


async def _audit(ports: ControlPorts, caller: Caller, summary: Summary, digest: str) -> None:
    await ports.audit.append(
        AuditRecord(
            who=caller.who,
            when=ports.clock.now(),
            action=summary.action,
            payload_hash=digest,
            outcome=summary.outcome,
            version=summary.version,
            counts=dict(summary.counts),
            duration_sec=summary.duration_sec,
        )
    )


class AppliedShiftRules:
    """ShiftRuleSource over the version store: the rules of the last `apply_shifts`, read again
    at most every `ttl`, so every replica assigns new facts to the new shifts within `ttl`."""

    def __init__(
        self, versions: VersionStore, clock: Clock, ttl: timedelta = timedelta(seconds=30)
    ) -> None:
        self._versions = versions
        self._clock = clock
        self._ttl = ttl
        self._rules: tuple[ShiftRule, ...] | None = None
        self._read_at: datetime | None = None

    async def current(self) -> tuple[ShiftRule, ...] | None:
        now = self._clock.now()
        if self._read_at is None or now - self._read_at >= self._ttl:
            stored = await self._versions.get(ShiftsDocument.name)
            self._rules = ShiftsDocument.from_json(stored.body).rules if stored else None
            self._read_at = now
        return self._rules

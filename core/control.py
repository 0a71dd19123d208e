"""The control-plane use cases: sync agents, extend dates, apply metrics, apply shifts (DESIGN §5)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any

from pulse.core import calendar
from pulse.core.dimensions import (
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
from pulse.core.errors import PulseError, TransientError, ValidationFailed
from pulse.core.lanes import SinkLane
from pulse.core.model import DimRow, Goal, MetricID, ShiftRule
from pulse.core.records import AppliedVersion, AuditRecord

if TYPE_CHECKING:
    from pulse.ports.clock import Clock
    from pulse.ports.control import AuditLog, JobLease, VersionStore
    from pulse.ports.ledger import Ledger
    from pulse.ports.roster_source import RosterCache, RosterSource
    from pulse.ports.sink import DimensionSink

LEDGER_CHUNK = 500  # keys per ledger claim: a DynamoDB batch and a SQLite statement stay small

Progress = Callable[[int, int], None]


class Busy(PulseError):
    """Another caller (maybe another replica) is rewriting the same dimension right now."""


class StaleVersion(ValidationFailed):
    """The payload's version is not newer than the one applied; nothing was written."""


class UnknownVersion(ValidationFailed):
    """A rollback names a version the document never had."""


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
    shift_rules: tuple[ShiftRule, ...] = (calendar.ALL_DAY,)
    """The SHIFTS setting: the rules ingest assigns keys by until the first `apply_shifts`."""
    window: DateWindow = field(default_factory=DateWindow)
    lease_ttl: timedelta = timedelta(minutes=10)
    ledger_lease: timedelta = timedelta(seconds=240)  # LEDGER_LEASE_SEC


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
    lanes: tuple[SinkLane, ...] = ()
    """Every sink, each with its ledger namespace (SINKS); empty: the one `sink`, its rows
    recorded in `ledger`."""

    @property
    def sink_lanes(self) -> tuple[SinkLane, ...]:
        return self.lanes or (SinkLane("sink", self.ledger, self.sink),)  # type: ignore[arg-type]


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


@dataclass(frozen=True, slots=True)
class DimensionChange:
    """What one control-plane call rewrites: `rows` become the whole of `table`, `body` is kept
    as `version` of `document`, and `diff` (against what is applied now) is what a dry run shows."""

    action: str
    table: str
    rows: tuple[DimRow, ...]
    document: str
    version: int
    body: str
    diff: Diff
    extra_counts: Mapping[str, int] = field(default_factory=dict)
    """Counts reported between `rows` and the diff's (`active` agents, `months`)."""
    after: Callable[[], Awaitable[None]] | None = None
    """Run under the lease once the rows are in (the roster sync refreshes the gate)."""
    restores: int | None = None
    """The earlier version a rollback applies again as `version`."""

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": len(self.rows), **self.extra_counts, **self.diff.counts()}


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
    document = known.merged(snapshot, calendar.business_date(now, config.zone))
    rows = document.rows(now)

    async def refresh_gate() -> None:
        if ports.roster_cache is not None:
            await ports.roster_cache.refresh(snapshot)

    change = DimensionChange(
        action=action,
        table="DimAgent",
        rows=tuple(rows),
        document=document.name,
        version=(stored.version if stored else 0) + 1,
        body=document.to_json(),
        diff=diff_rows(known.rows(now), rows, ignore=("SyncedAt",)),
        extra_counts={"active": len(document.active)},
        after=refresh_gate,
    )
    return await apply_change(change, ports, config, caller, started, dry_run=dry_run)


async def extend_dates(
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Push every DimDate row of the rolling window not pushed yet (through the ledger).

    Not a `DimensionChange`: nothing is replaced or versioned, each date is pushed once."""
    started = ports.clock.now()
    first, last = config.window.around(calendar.business_date(started, config.zone))
    rows = calendar.dim_dates(first, last, config.workdays)
    window = f"window {first.isoformat()} … {last.isoformat()}"
    counts = {"window": len(rows), "pushed": 0, "already": 0}
    if dry_run:
        # What the real run would push: the dates the ledger has not recorded pushed.
        done = await _already_pushed(rows, ports)
        counts = {"window": len(rows), "to push": len(rows) - done, "already": done}
        outcome, shown = "dry_run", f"{window} ({len(rows)} days)"
    else:
        async with _lease(ports, config, caller, "DimDate"):
            counts["pushed"], counts["already"] = await _push_window(rows, ports, config, progress)
        outcome, shown = ("applied" if counts["pushed"] else "unchanged"), window
    summary = _summary("extend_dates", outcome, dry_run, counts, ports, started, changes=(shown,))
    await _audit(ports, caller, summary, payload_hash(f"{first}..{last}"))
    return summary


async def apply_metrics(
    document: MetricsDocument,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
    restores: int | None = None,
) -> Summary:
    """Validate → version check → rewrite DimMetric from every stored month → audit.

    Months no operator set keep default-goal rows (Version 0) for the whole calendar window, so
    the rewrite never drops the rows ingest pushed for months facts reference. The applied
    version sent again is `unchanged`; `restores` names the version a rollback re-applies."""
    started = ports.clock.now()
    action = "apply_metrics" if restores is None else "rollback_metrics"
    document.validate()
    stored = await ports.versions.get(document.name)
    await _refuse_stale(document, stored, action, ports, caller, started)
    if stored is not None and stored.body == document.to_json():
        return await report_unchanged(action, stored, ports, caller, started, dry_run=dry_run)
    others = [
        MetricsDocument.from_json(v.body)
        for v in await ports.versions.get_all(MetricsDocument.prefix)
        if v.document != document.name
    ]
    applied = [MetricsDocument.from_json(stored.body)] if stored else []
    months = months_between(*config.window.around(calendar.business_date(started, config.zone)))
    before = metric_rows([*others, *applied], config.goals, months)
    rows = metric_rows([*others, document], config.goals, months)
    change = DimensionChange(
        action=action,
        table="DimMetric",
        rows=tuple(rows),
        document=document.name,
        version=document.version,
        body=document.to_json(),
        diff=diff_rows(before, rows),
        extra_counts={"months": len({r.Month for r in rows})},
        restores=restores,
    )
    return await apply_change(change, ports, config, caller, started, dry_run=dry_run)


async def apply_shifts(
    document: ShiftsDocument,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
    restores: int | None = None,
) -> Summary:
    """Validate the rules (each local minute → exactly one shift or Unassigned) → replace DimShift.

    As `apply_metrics`: the applied version sent again is `unchanged`; `restores` for rollback."""
    started = ports.clock.now()
    action = "apply_shifts" if restores is None else "rollback_shifts"
    document.validate()
    # Every key a fact can carry came from the applied rules (and the ones they retired) or,
    # before the first apply, from the SHIFTS setting (whose rows ingest pushed): those stay,
    # marked Retired. The document is completed before the version check, so the applied
    # file sent again compares equal to what was stored.
    stored = await ports.versions.get(document.name)
    applied = ShiftsDocument.from_json(stored.body) if stored else None
    before = applied.rows() if applied else calendar.shift_rows(config.shift_rules)
    document = document.succeeding(
        (*applied.rules, *applied.retired) if applied else config.shift_rules
    )
    await _refuse_stale(document, stored, action, ports, caller, started)
    if stored is not None and stored.body == document.to_json():
        return await report_unchanged(action, stored, ports, caller, started, dry_run=dry_run)
    rows = document.rows()
    change = DimensionChange(
        action=action,
        table="DimShift",
        rows=tuple(rows),
        document=document.name,
        version=document.version,
        body=document.to_json(),
        diff=diff_rows(before, rows),
        restores=restores,
    )
    return await apply_change(change, ports, config, caller, started, dry_run=dry_run)


# ---- one way to change a dimension -----------------------------------------------------------


async def apply_change(
    change: DimensionChange,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    started: datetime,
    *,
    dry_run: bool,
) -> Summary:
    """Dry: report. Else, under the dimension's lease: replace the table, store the document,
    mark the rows pushed in the ledger (so ingest never overwrites them with defaults), run the
    change's hook. Audit either way."""
    if not dry_run:
        async with _lease(ports, config, caller, change.table):
            await _in_every_sink(ports, partial(_replace_in, change=change, config=config))
            applied = AppliedVersion(
                change.document,
                change.version,
                change.body,
                ports.clock.now(),
                applied_by=caller.who,
                counts=change.counts,
                restored_from=change.restores,
            )
            if not await ports.versions.put(applied):
                raise StaleVersion(
                    f"{change.document}: version {change.version} was overtaken while applying"
                )
            if change.after is not None:
                await change.after()
    outcome = "dry_run" if dry_run else "applied"
    summary = _summary(
        change.action,
        outcome,
        dry_run,
        change.counts,
        ports,
        started,
        version=change.version,
        changes=change.diff.details,
    )
    await _audit(ports, caller, summary, payload_hash(change.body))
    return summary


# ---- shared steps ----------------------------------------------------------------------------


async def _refuse_stale(
    document: MetricsDocument | ShiftsDocument,
    stored: AppliedVersion | None,
    action: str,
    ports: ControlPorts,
    caller: Caller,
    started: datetime,
) -> None:
    """Nothing when the payload's version is newer than the applied one `stored` (or there is
    none), or the payload is the applied version itself (sent again); else audit the refusal and
    raise `StaleVersion`."""
    if stored is None or document.version > stored.version or stored.body == document.to_json():
        return
    message = (
        f"version: {document.version} is not newer than the applied version {stored.version} of"
        f" {stored.document} (applied {stored.applied_at.isoformat()}); send version"
        f" {stored.version + 1} or more"
    )
    await ports.audit.append(
        AuditRecord(
            who=caller.who,
            when=started,
            action=action,
            payload_hash=payload_hash(document.to_json()),
            outcome="stale",
            version=document.version,
            duration_sec=(ports.clock.now() - started).total_seconds(),
        )
    )
    raise StaleVersion(message)


async def report_unchanged(
    action: str,
    applied: AppliedVersion,
    ports: ControlPorts,
    caller: Caller,
    started: datetime,
    *,
    dry_run: bool,
    why: str = "",
) -> Summary:
    """`applied` is what the call would write: nothing is written; the call is audited."""
    why = why or (
        f"v{applied.version} is the applied version (applied {applied.applied_at.isoformat()}"
        f"{' by ' + applied.applied_by if applied.applied_by else ''})"
    )
    counts = {"added": 0, "removed": 0, "changed": 0}
    summary = _summary(
        action, "unchanged", dry_run, counts, ports, started, applied.version, changes=(why,)
    )
    await _audit(ports, caller, summary, payload_hash(applied.body))
    return summary


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


async def _in_every_sink(ports: ControlPorts, step: Callable[[SinkLane], Awaitable[None]]) -> None:
    """`step` in each sink: one that fails does not keep the others from theirs; its error then
    raises, and the call, idempotent in every sink, is made again whole."""
    failed: list[Exception] = []
    for lane in ports.sink_lanes:
        try:
            await step(lane)
        except Exception as exc:
            failed.append(exc)
    if failed:
        raise failed[0]


async def _replace_in(lane: SinkLane, *, change: DimensionChange, config: ControlConfig) -> None:
    """Replace the table in one sink, then record its rows pushed in that sink's ledger (so
    ingest never overwrites them with defaults)."""
    await lane.sink.replace(change.table, change.rows)
    for chunk in _chunks(change.rows, LEDGER_CHUNK):
        claim = await lane.ledger.claim([dimension_key(r) for r in chunk], config.ledger_lease)
        if claim.claimed:
            await lane.ledger.commit(claim, forever=True)


async def _push_window(
    rows: Sequence[DimRow], ports: ControlPorts, config: ControlConfig, progress: Progress | None
) -> tuple[int, int]:
    """Push once in each sink, a ledger chunk at a time, telling `progress`; (pushed, already
    pushed), summed over the sinks."""
    totals = [0, 0]

    async def push(lane: SinkLane) -> None:
        for done, chunk in enumerate(_chunks(rows, LEDGER_CHUNK)):
            pushed, already = await push_once(chunk, lane.ledger, lane.sink, config.ledger_lease)
            totals[0] += pushed
            totals[1] += already
            if progress is not None:
                progress(min((done + 1) * LEDGER_CHUNK, len(rows)), len(rows))

    await _in_every_sink(ports, push)
    return totals[0], totals[1]


async def _already_pushed(rows: Sequence[DimRow], ports: ControlPorts) -> int:
    """How many rows every sink has pushed already."""
    keys = [dimension_key(r) for r in rows]
    everywhere: set[str] | None = None
    for lane in ports.sink_lanes:
        done: set[str] = set()
        for start in range(0, len(keys), LEDGER_CHUNK):
            done |= await lane.ledger.done_among(keys[start : start + LEDGER_CHUNK])
        everywhere = done if everywhere is None else everywhere & done
    return len(everywhere or ())


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
    at most every `ttl`, so every replica assigns new facts to the new shifts within `ttl`.
    While the store is down (throttled) the rules last read stay in force; before any read
    succeeded, the failure is raised (the batch comes back later)."""

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
            try:
                stored = await self._versions.get(ShiftsDocument.name)
            except TransientError:
                if self._read_at is None:
                    raise
                return self._rules
            self._rules = ShiftsDocument.from_json(stored.body).rules if stored else None
            self._read_at = now
        return self._rules

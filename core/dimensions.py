"""Dimension rows: pushed once through the ledger, and the documents the control plane keeps
(roster agents, calendar window, goals, shifts)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from pulse.core import calendar
from pulse.core.errors import ValidationFailed
from pulse.core.model import (
    DimAgent,
    DimMetric,
    DimRow,
    DimShift,
    Goal,
    MetricID,
    RosterAgent,
    RosterSnapshot,
    ShiftRule,
    row_dict,
)
from pulse.core.schema import key_of, table_of

if TYPE_CHECKING:
    from pulse.ports.ledger import Ledger
    from pulse.ports.sink import DimensionSink

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MINUTES_PER_DAY = 24 * 60


# ---- pushed once -----------------------------------------------------------------------------


def dimension_key(row: DimRow) -> str:
    """Ledger key under which a dimension row is pushed once: `dim:DimDate:20251105`."""
    return f"dim:{table_of(row).name}:{key_of(row)}"


async def push_once(
    rows: Sequence[DimRow], ledger: Ledger, sink: DimensionSink, lease: timedelta
) -> tuple[int, int]:
    """Claim the rows' keys, upsert the rows claimed, commit them for good (release them if the
    upsert fails); returns (pushed, already pushed or in flight elsewhere)."""
    by_key = {dimension_key(r): r for r in rows}
    claim = await ledger.claim(list(by_key), lease)
    if claim.claimed:
        try:
            await sink.upsert([by_key[k] for k in claim.claimed])
        except BaseException:
            await ledger.release(claim)
            raise
        # No TTL: a dimension row pushed again after a purge would be a duplicate key in Power BI.
        await ledger.commit(claim, forever=True)
    return len(claim.claimed), len(claim.done) + len(claim.busy)


# ---- DimAgent --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentsDocument:
    """Every agent the roster ever held (their facts keep needing a row), who is on it now, and
    each one's period on it: `periods[id] = (first date, last date a sync saw them)`, the first
    date None for agents already there at the first sync (since before Pulse knew)."""

    agents: tuple[RosterAgent, ...]
    active: frozenset[str]
    ring_group_id: str | None = None
    periods: Mapping[str, tuple[date | None, date | None]] = field(default_factory=dict)

    name = "dim_agent"

    def merged(self, snapshot: RosterSnapshot, today: date) -> AgentsDocument:
        """Today's roster on top of everyone seen before. A sync never moves a past day: an
        agent new today starts today; one already known (or found by the first sync, or kept
        from before periods were) has no start; one gone keeps the last day a sync saw them."""
        every = {a.agent_id: a for a in self.agents}
        periods = dict(self.periods)
        for agent in snapshot.agents:
            if agent.agent_id in periods:
                since = periods[agent.agent_id][0]
            else:
                since = today if self.agents and agent.agent_id not in every else None
            periods[agent.agent_id] = (since, today)
        every.update({a.agent_id: a for a in snapshot.agents})
        return AgentsDocument(
            tuple(sorted(every.values(), key=lambda a: a.agent_id)),
            frozenset(a.agent_id for a in snapshot.agents),
            snapshot.ring_group_id,
            periods,
        )

    def rows(self, now: datetime) -> list[DimAgent]:
        rows = []
        for a in self.agents:
            active = a.agent_id in self.active
            since, last_seen = self.periods.get(a.agent_id, (None, None))
            rows.append(
                DimAgent(
                    AgentKey=a.agent_id,
                    AgentName=a.name,
                    Email=a.email,
                    RingGroupId=a.ring_group_id or self.ring_group_id,
                    Active=active,
                    SyncedAt=now,
                    ActiveFrom=since,
                    # An agent who left before periods were kept has none: never counted in a
                    # goal, as before (Goal counts an agent without ActiveTo only while Active).
                    ActiveTo=None if active else last_seen,
                )
            )
        return rows

    def to_json(self) -> str:
        return json.dumps(
            {
                "agents": [
                    {
                        "id": a.agent_id,
                        "name": a.name,
                        "email": a.email,
                        "ringGroupId": a.ring_group_id,
                    }
                    for a in self.agents
                ],
                "active": sorted(self.active),
                "ringGroupId": self.ring_group_id,
                "periods": {
                    key: [_iso(since), _iso(last_seen)]
                    for key, (since, last_seen) in sorted(self.periods.items())
                },
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, body: str) -> AgentsDocument:
        data = json.loads(body)
        agents = tuple(
            RosterAgent(str(a["id"]), str(a["name"]), a.get("email"), a.get("ringGroupId"))
            for a in data["agents"]
        )
        periods = {
            str(key): (_day(since), _day(last_seen))
            for key, (since, last_seen) in data.get("periods", {}).items()
        }
        return cls(agents, frozenset(data["active"]), data.get("ringGroupId"), periods)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


# ---- DimDate ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateWindow:
    """The rolling calendar kept pushed: `back_days` before today to `ahead_days` after."""

    back_days: int = 730
    ahead_days: int = 365

    def around(self, today: date) -> tuple[date, date]:
        return today - timedelta(days=self.back_days), today + timedelta(days=self.ahead_days)


def months_between(first: date, last: date) -> list[str]:
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(calendar.month_key(date(year, month, 1)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


# ---- DimMetric -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsDocument:
    """The goals an operator set for one month; metrics it does not name keep the defaults."""

    month: str
    version: int
    goals: Mapping[MetricID, Goal]
    agent_goals: Mapping[str, Mapping[MetricID, float]] = field(default_factory=dict)
    """Per-agent overrides of the month's goal: `{AgentKey: {CALLS: 80}}`."""

    prefix = "dim_metric:"

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.month}"

    def validate(self) -> None:
        problems = []
        if not MONTH.match(self.month):
            problems.append(f"month: {self.month!r} is not a month as YYYY-MM")
        if self.version < 1:
            problems.append(f"version: must be 1 or more (got {self.version})")
        if not self.goals:
            problems.append("metrics: name at least one metric")
        for metric, goal in self.goals.items():
            if goal.default_goal < 0:
                problems.append(f"metrics.{metric.value}.defaultGoal: must be ≥ 0")
            if not 0 <= goal.yellow_floor_pct <= 1:
                problems.append(f"metrics.{metric.value}.yellowFloorPct: must be within 0–1")
        for agent, goals in self.agent_goals.items():
            if not agent.strip():
                problems.append("agents: an agent key must not be empty")
            problems.extend(
                f"agents.{agent}.{metric.value}: must be ≥ 0"
                for metric, goal in goals.items()
                if goal < 0
            )
        if problems:
            raise ValidationFailed("; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(
            {
                "month": self.month,
                "version": self.version,
                "metrics": {
                    m.value: {"defaultGoal": g.default_goal, "yellowFloorPct": g.yellow_floor_pct}
                    for m, g in sorted(self.goals.items())
                },
                "agents": {
                    agent: {m.value: g for m, g in sorted(goals.items())}
                    for agent, goals in sorted(self.agent_goals.items())
                },
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, body: str) -> MetricsDocument:
        data = json.loads(body)
        goals = {
            MetricID(m): Goal(MetricID(m), float(g["defaultGoal"]), float(g["yellowFloorPct"]))
            for m, g in data["metrics"].items()
        }
        agent_goals = {
            str(agent): {MetricID(m): float(g) for m, g in by_metric.items()}
            for agent, by_metric in data.get("agents", {}).items()
        }
        return cls(str(data["month"]), int(data["version"]), goals, agent_goals)


def metric_rows(
    documents: Iterable[MetricsDocument], defaults: Mapping[MetricID, Goal], months: Iterable[str]
) -> list[DimMetric]:
    """Every month × metric: the operator's goal where a document sets one, else the default
    (Version 0). `months` are the months that must have rows even without a document."""
    by_month = {d.month: d for d in documents}
    rows: list[DimMetric] = []
    for month in sorted(set(months) | set(by_month)):
        document = by_month.get(month)
        for metric in MetricID:
            goal = document.goals.get(metric) if document else None
            version = document.version if goal is not None and document else 0
            goal = goal or defaults.get(metric)
            if goal is not None:
                rows.append(metric_row(month, metric, goal, version))
                if document is not None:
                    rows.extend(_agent_rows(document, metric, goal))
    return rows


def _agent_rows(document: MetricsDocument, metric: MetricID, goal: Goal) -> list[DimMetric]:
    """The month's own goals of some agents for one metric, graded on the month's floor."""
    return [
        DimMetric(
            MetricMonthKey=f"{document.month}:{metric.value}:{agent}",
            MetricID=metric,
            Month=document.month,
            DefaultGoal=float(goals[metric]),
            YellowFloorPct=float(goal.yellow_floor_pct),
            Version=document.version,
            AgentKey=agent,
        )
        for agent, goals in sorted(document.agent_goals.items())
        if metric in goals
    ]


def metric_row(month: str, metric: MetricID, goal: Goal, version: int = 0) -> DimMetric:
    """One month's goal for one metric; Version 0 is the default no operator set."""
    return DimMetric(
        MetricMonthKey=f"{month}:{metric.value}",
        MetricID=metric,
        Month=month,
        DefaultGoal=float(goal.default_goal),
        YellowFloorPct=float(goal.yellow_floor_pct),
        Version=version,
    )


# ---- DimShift --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShiftsDocument:
    """The shift rules in business local time. Without `allow_unassigned`, the rules must cover
    every minute of the week; with it, uncovered minutes map to the explicit Unassigned shift."""

    version: int
    rules: tuple[ShiftRule, ...]
    allow_unassigned: bool = False
    retired: tuple[ShiftRule, ...] = ()
    """Rules of earlier versions (or of the SHIFTS setting) no rule here has the key of: facts
    may carry their keys, so their rows stay in DimShift, marked Retired."""

    name = "dim_shift"

    def succeeding(self, earlier: Sequence[ShiftRule]) -> ShiftsDocument:
        """This document with every key facts could carry kept: `earlier` are the rules that
        assigned keys before (the applied document's rules and retired ones, or the SHIFTS
        setting's); those this document no longer names become its retired rules."""
        live = {r.key for r in self.rules} | {calendar.UNASSIGNED_SHIFT}
        retired: dict[str, ShiftRule] = {}
        for rule in earlier:
            if rule.key not in live:
                retired.setdefault(rule.key, rule)
        return replace(self, retired=tuple(sorted(retired.values(), key=lambda r: r.key)))

    def validate(self) -> None:
        problems = []
        if self.version < 1:
            problems.append(f"version: must be 1 or more (got {self.version})")
        if not self.rules:
            problems.append("shifts: name at least one shift")
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            where = f"shifts[{index}]"
            problems.extend(_key_problems(where, rule.key, seen))
            problems.extend(_rule_problems(where, rule))
            seen.add(rule.key)
        if not problems:
            problems.extend(coverage_problems(self.rules, self.allow_unassigned))
        if problems:
            raise ValidationFailed("; ".join(problems))

    def rows(self) -> list[DimShift]:
        retired = [
            replace(row, Retired=True)
            for row in calendar.shift_rows(self.retired)
            if row.ShiftKey != calendar.UNASSIGNED_SHIFT
        ]
        return calendar.shift_rows(self.rules) + retired

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "allowUnassigned": self.allow_unassigned,
                "shifts": [_rule_json(r) for r in self.rules],
                "retired": [_rule_json(r) for r in self.retired],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, body: str) -> ShiftsDocument:
        data = json.loads(body)
        rules = tuple(_rule_of(s) for s in data["shifts"])
        retired = tuple(_rule_of(s) for s in data.get("retired", []))
        return cls(int(data["version"]), rules, bool(data.get("allowUnassigned", False)), retired)


def _rule_json(rule: ShiftRule) -> dict[str, Any]:
    return {
        "key": rule.key,
        "name": rule.name,
        "start": rule.start.strftime("%H:%M"),
        "end": rule.end.strftime("%H:%M"),
        "days": sorted(rule.days),
    }


def _rule_of(data: Mapping[str, Any]) -> ShiftRule:
    return ShiftRule(
        key=data["key"],
        name=data["name"],
        start=time.fromisoformat(data["start"]),
        end=time.fromisoformat(data["end"]),
        days=frozenset(data["days"]),
    )


def _key_problems(where: str, key: str, keys_before: set[str]) -> list[str]:
    """A shift key is named, not the reserved Unassigned, and not an earlier rule's."""
    problems = []
    if not key.strip():
        problems.append(f"{where}.key: must not be empty")
    if key.upper() == calendar.UNASSIGNED_SHIFT:
        problems.append(f"{where}.key: {key!r} is reserved for uncovered times")
    if key in keys_before:
        problems.append(f"{where}.key: {key!r} is used twice")
    return problems


def _rule_problems(where: str, rule: ShiftRule) -> list[str]:
    """A rule has a name, real weekdays, and starts and ends on whole local minutes."""
    problems = []
    if not rule.name.strip():
        problems.append(f"{where}.name: must not be empty")
    if not rule.days or not rule.days <= set(range(7)):
        problems.append(f"{where}.days: weekdays 0 (Mon) to 6 (Sun), at least one")
    for label, moment in (("start", rule.start), ("end", rule.end)):
        if moment.second or moment.microsecond or moment.tzinfo is not None:
            problems.append(f"{where}.{label}: whole minutes of local time (HH:MM)")
    return problems


def _minute(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _covered_minutes(rule: ShiftRule) -> set[int]:
    """Minutes of the week (0 = Monday 00:00) the rule covers, with `core.calendar`'s meaning:
    `end <= start` wraps midnight and the part after midnight belongs to the start day."""
    start, end = _minute(rule.start), _minute(rule.end)
    length = end - start if end > start else MINUTES_PER_DAY - start + end
    week = 7 * MINUTES_PER_DAY
    return {
        (day * MINUTES_PER_DAY + start + offset) % week
        for day in rule.days
        for offset in range(length)
    }


def _clock(minute_of_week: int) -> str:
    day, minute = divmod(minute_of_week, MINUTES_PER_DAY)
    return f"{calendar.WEEKDAYS[day]} {minute // 60:02d}:{minute % 60:02d}"


def _ranges(minutes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted minutes as [first, last] runs."""
    runs: list[tuple[int, int]] = []
    for m in sorted(minutes):
        if runs and runs[-1][1] == m - 1:
            runs[-1] = (runs[-1][0], m)
        else:
            runs.append((m, m))
    return runs


def coverage_problems(rules: Sequence[ShiftRule], allow_unassigned: bool) -> list[str]:
    """Overlaps always, gaps unless allowed: each local minute maps to exactly one shift.

    Rules speak local wall-clock time, so DST days need no special case: the skipped hour has
    no instants and the repeated hour's instants both read as the same wall-clock minutes."""
    owners: dict[int, list[str]] = {}
    for rule in rules:
        for minute in _covered_minutes(rule):
            owners.setdefault(minute, []).append(rule.key)
    problems: list[str] = []
    clashes: dict[tuple[str, ...], list[int]] = {}
    for minute, owned_by in owners.items():
        if len(owned_by) > 1:
            clashes.setdefault(tuple(owned_by), []).append(minute)
    for clash, minutes in sorted(clashes.items(), key=lambda kv: min(kv[1])):
        first, last = _ranges(minutes)[0]
        problems.append(
            f"shifts: {' and '.join(clash)} overlap ({_clock(first)}–{_clock(last + 1)}"
            f"{' and more' if len(_ranges(minutes)) > 1 else ''})"
        )
    if not allow_unassigned:
        gaps = _ranges(set(range(7 * MINUTES_PER_DAY)) - set(owners))
        for first, last in gaps[:3]:
            problems.append(
                f"shifts: {_clock(first)}–{_clock((last + 1) % (7 * MINUTES_PER_DAY))} is not"
                " covered (add a shift, or set allowUnassigned to count it as Unassigned)"
            )
        if len(gaps) > 3:
            problems.append(f"shifts: {len(gaps) - 3} more uncovered stretch(es)")
    return problems


# ---- what changed ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Diff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    details: tuple[str, ...] = field(default=(), compare=False)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
        }


def diff_rows(
    before: Sequence[DimRow], after: Sequence[DimRow], ignore: Sequence[str] = ()
) -> Diff:
    """Rows added, removed and changed by key, with one readable line per change."""
    old = {key_of(r): _comparable(r, ignore) for r in before}
    new = {key_of(r): _comparable(r, ignore) for r in after}
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    changed = tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k]))
    details = [f"+ {k}" for k in added] + [f"- {k}" for k in removed]
    for k in changed:
        fields = ", ".join(
            f"{n}: {old[k][n]!r} → {new[k][n]!r}" for n in new[k] if old[k][n] != new[k][n]
        )
        details.append(f"~ {k} ({fields})")
    return Diff(added, removed, changed, tuple(details))


def _comparable(row: DimRow, ignore: Sequence[str]) -> dict[str, Any]:
    return {n: v for n, v in row_dict(row).items() if n not in ignore}

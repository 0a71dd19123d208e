"""The star schema in Kusto terms: tables, JSON mappings, the streaming policy, and the stored
functions that are the KQL twin of the Power BI measures (DESIGN §3, §8)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulse.core.errors import SinkPermanentError
from pulse.core.model import MetricID
from pulse.core.schema import DIMENSIONS, FACT_EVENT, ColumnType, Table

KQL_TYPES: dict[ColumnType, str] = {
    ColumnType.INT64: "long",
    ColumnType.DOUBLE: "real",
    ColumnType.BOOLEAN: "bool",
    ColumnType.DATETIME: "datetime",
    ColumnType.STRING: "string",
}
FOLDER = "Pulse"


def cslschema(table: Table) -> str:
    """`EventKey:string, Source:string, …` as `.create-merge table` and `.show … cslschema` say it."""
    return ", ".join(f"{c.name}:{KQL_TYPES[c.type]}" for c in table.columns)


def create_merge_table(table: Table) -> str:
    """Creates the table, or adds the columns it lacks (never drops or retypes one)."""
    return f".create-merge table {table.name} ({cslschema(table)})"


def mapping_json(table: Table) -> str:
    return json.dumps(
        [{"column": c.name, "Properties": {"Path": f"$.{c.name}"}} for c in table.columns],
        separators=(",", ":"),
    )


def create_mapping(table: Table, mapping: str) -> str:
    return (
        f".create-or-alter table {table.name} ingestion json mapping "
        f"{string_literal(mapping)} '{mapping_json(table)}'"
    )


def streaming_policy(table: Table) -> str:
    return f".alter table {table.name} policy streamingingestion enable"


def clear_table(table: Table) -> str:
    return f".clear table {table.name} data"


# --- literals (dimension replace sends its rows inline, so the swap is one transaction) ----------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string_literal(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch < " ":
            raise SinkPermanentError(f"control character {ch!r} cannot go into a KQL string")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _literal(value: Any, kind: ColumnType) -> str:
    name = KQL_TYPES[kind]
    if value is None:
        return '""' if kind is ColumnType.STRING else f"{name}(null)"
    if kind is ColumnType.STRING:
        return string_literal(str(value))
    if kind is ColumnType.BOOLEAN:
        return "true" if value else "false"
    if kind is ColumnType.DATETIME:
        return f"datetime({value})"
    if kind is ColumnType.DOUBLE:
        return repr(float(value))
    return str(int(value))


def datatable(table: Table, rows: Sequence[Mapping[str, Any]]) -> str:
    """`datatable(cols)[v, v, …]` from rows already encoded as JSON values (RowEncoder.values)."""
    values = ", ".join(_literal(row[c.name], c.type) for row in rows for c in table.columns)
    return f"datatable({cslschema(table)})[{values}]"


def set_or_replace(table: Table, rows: Sequence[Mapping[str, Any]]) -> str:
    """Replaces the table's data with `rows` in one transaction: a reader sees old or new."""
    return f".set-or-replace {table.name} <| {datatable(table, rows)}"


# --- stored functions: the KQL twin of the DAX measures -------------------------------------------


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    parameters: str  # "(fromDateKey:long, toDateKey:long)"
    body: str
    doc: str
    measure: str  # the Power BI measure (or table) it stands for

    def command(self) -> str:
        return (
            f".create-or-alter function with (folder = {string_literal(FOLDER)}, "
            f"docstring = {string_literal(self.doc)}) {self.name}{self.parameters} {{\n"
            f"{self.body}\n}}"
        )


def _latest(table: Table) -> Function:
    # Streaming ingestion only appends: an upserted dimension row is a newer version of its key.
    return Function(
        f"Pulse{table.name}",
        "()",
        f"{table.name}\n"
        "| extend _ingested = ingestion_time()\n"
        f"| summarize arg_max(_ingested, *) by {table.key}\n"
        "| project-away _ingested",
        f"{table.name}, latest version of each {table.key}",
        f"{table.name} (the table)",
    )


FACTS = Function(
    "PulseFacts",
    "()",
    # A row replayed after a crash between sink and ledger commit counts once (DESIGN §2).
    f"{FACT_EVENT.name}\n"
    "| extend _ingested = ingestion_time()\n"
    f"| summarize arg_min(_ingested, *) by {FACT_EVENT.key}\n"
    "| project-away _ingested",
    "FactEvent with one row per EventKey",
    "FactEvent (rows DISTINCTCOUNT sees)",
)
RANGE = "(fromDateKey:long, toDateKey:long)"
ACTIVITIES = Function(
    "PulseActivities",
    RANGE,
    "PulseFacts()\n"
    "| where DateKey between (fromDateKey .. toDateKey)\n"
    "| summarize Activities = count() by DateKey, AgentKey, MetricID",
    "Activities = distinct EventKeys per business date, agent and metric",
    "[Activities] = DISTINCTCOUNT(FactEvent[EventKey])",
)


def _per_metric(metric: MetricID) -> Function:
    name = metric.value.title()
    return Function(
        f"Pulse{name}",
        RANGE,
        f"PulseActivities(fromDateKey, toDateKey)\n"
        f'| where MetricID == "{metric.value}"\n'
        f"| project DateKey, AgentKey, {name} = Activities",
        f"{name} per business date and agent",
        f'[{name}] = CALCULATE([Activities], FactEvent[MetricID] = "{metric.value}")',
    )


DAILY_METRIC = Function(
    "PulseDailyMetric",
    RANGE,
    """let counts = PulseActivities(fromDateKey, toDateKey);
PulseDimDate()
| where DateKey between (fromDateKey .. toDateKey)
| extend MonthKey = format_datetime(Date, "yyyy-MM"), _all = 1
| join kind=inner (
    PulseDimMetric() | where isempty(AgentKey)
    | project MonthKey = Month, MetricID, MetricMonthKey, DefaultGoal, YellowFloorPct
  ) on MonthKey
| join kind=inner (
    PulseDimAgent()
    | project AgentKey, AgentName, RingGroupId, Active, ActiveFrom, ActiveTo, _all = 1
  ) on _all
| extend OwnKey = strcat(MetricMonthKey, ":", AgentKey)
| join kind=leftouter (
    PulseDimMetric() | where isnotempty(AgentKey) | project OwnKey = MetricMonthKey, OwnGoal = DefaultGoal
  ) on OwnKey
| join kind=leftouter counts on DateKey, AgentKey, MetricID
| extend Count = coalesce(Activities, 0)
| extend OnRoster = (isnull(ActiveFrom) or ActiveFrom <= Date)
    and iff(isnull(ActiveTo), Active, Date <= ActiveTo)
| where OnRoster or Count > 0
| extend Goal = iff(IsWorkday and OnRoster, coalesce(OwnGoal, DefaultGoal), 0.0)
| extend Attainment = iff(Goal > 0, todouble(Count) / Goal, real(null))
| extend Status = case(Goal <= 0, "", Attainment >= 1.0, "Green", Attainment >= YellowFloorPct, "Yellow", "Red")
| project DateKey, Date, AgentKey, AgentName, RingGroupId, MetricID, Count, Goal, Attainment, Status,
    YellowFloorPct""",
    "FactDailyMetric: count, goal, attainment and status per business date, agent and metric",
    "[Goal], [Attainment %], [Status] (FactDailyMetric)",
)

FUNCTIONS: tuple[Function, ...] = (
    *(_latest(t) for t in DIMENSIONS),
    FACTS,
    ACTIVITIES,
    *(_per_metric(m) for m in MetricID),
    DAILY_METRIC,
)

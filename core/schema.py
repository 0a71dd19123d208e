"""The star schema (DESIGN §3) as data: every sink derives its tables from this one definition."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pulse.core.model import DimAgent, DimDate, DimMetric, DimShift, FactEvent, Row


class ColumnType(StrEnum):
    """Spelled as Power BI's push API wants them (case-sensitive)."""

    INT64 = "Int64"
    DOUBLE = "Double"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    STRING = "String"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key: str
    columns: tuple[Column, ...]
    row_type: type

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


S, INT, D, B, T = (
    ColumnType.STRING,
    ColumnType.INT64,
    ColumnType.DOUBLE,
    ColumnType.BOOLEAN,
    ColumnType.DATETIME,
)

FACT_EVENT = Table(
    "FactEvent",
    "EventKey",
    (
        Column("EventKey", S),
        Column("Source", S),
        Column("MetricID", S),
        Column("AgentKey", S),
        Column("DateKey", INT),
        Column("ShiftKey", S),
        Column("OccurredAtUtc", T),
        Column("OccurredAtLocal", T),
        Column("MetricMonthKey", S),
        Column("DurationSec", INT, nullable=True),
    ),
    FactEvent,
)
DIM_AGENT = Table(
    "DimAgent",
    "AgentKey",
    (
        Column("AgentKey", S),
        Column("AgentName", S),
        Column("Email", S, nullable=True),
        Column("RingGroupId", S, nullable=True),
        Column("Active", B),
        Column("ActiveFrom", T, nullable=True),
        Column("ActiveTo", T, nullable=True),
        Column("SyncedAt", T),
    ),
    DimAgent,
)
DIM_DATE = Table(
    "DimDate",
    "DateKey",
    (
        Column("DateKey", INT),
        Column("Date", T),
        Column("Year", INT),
        Column("Quarter", INT),
        Column("Month", INT),
        Column("MonthName", S),
        Column("Day", INT),
        Column("DayOfWeek", INT),
        Column("DayName", S),
        Column("WeekOfYear", INT),
        Column("IsWeekend", B),
        Column("IsWorkday", B),
    ),
    DimDate,
)
DIM_METRIC = Table(
    "DimMetric",
    "MetricMonthKey",
    (
        Column("MetricMonthKey", S),
        Column("MetricID", S),
        Column("Month", S),
        Column("DefaultGoal", D),
        Column("YellowFloorPct", D),
        Column("Version", INT),
        Column("AgentKey", S, nullable=True),
    ),
    DimMetric,
)
DIM_SHIFT = Table(
    "DimShift",
    "ShiftKey",
    (
        Column("ShiftKey", S),
        Column("ShiftName", S),
        Column("StartLocal", S),
        Column("EndLocal", S),
        Column("Days", S),
        Column("Retired", B),
    ),
    DimShift,
)

TABLES: tuple[Table, ...] = (FACT_EVENT, DIM_AGENT, DIM_DATE, DIM_METRIC, DIM_SHIFT)
DIMENSIONS: tuple[Table, ...] = (DIM_AGENT, DIM_DATE, DIM_METRIC, DIM_SHIFT)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
REFERENCES: tuple[Table, ...] = tuple(d for d in DIMENSIONS if d.key in FACT_EVENT.column_names)
"""The dimensions a FactEvent row points at by key: each key a fact carries must have its row."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """Facts whose `column` holds a `key` their dimension `table` has no row for."""

    table: str
    column: str
    key: str
    facts: int

    def __str__(self) -> str:
        return f"{self.table}[{self.column}] = {self.key!r}: {self.facts:,} fact(s), no row"


def orphans(
    facts: Iterable[Mapping[str, Any]], dimensions: Mapping[str, Iterable[Mapping[str, Any]]]
) -> list[Orphan]:
    """Every key facts carry that its dimension (rows by table name) lacks, as a reader of the
    sink would find them (keys compared as text: sinks return ints as ints or strings)."""
    found: list[Orphan] = []
    facts = list(facts)
    for table in REFERENCES:
        present = {str(row[table.key]) for row in dimensions.get(table.name, ())}
        missing = Counter(str(f[table.key]) for f in facts if str(f[table.key]) not in present)
        found.extend(Orphan(table.name, table.key, k, n) for k, n in sorted(missing.items()))
    return found


def table_of(row: Row) -> Table:
    for table in TABLES:
        if isinstance(row, table.row_type):
            return table
    raise TypeError(f"not a star-schema row: {type(row).__name__}")


def key_of(row: Row) -> str:
    return str(getattr(row, table_of(row).key))

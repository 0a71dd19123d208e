"""The star schema (DESIGN §3) as data: every sink derives its tables from this one definition."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.model import DimAgent, DimDate, DimMetric, DimShift, FactEvent, Row


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
    ),
    DimShift,
)

TABLES: tuple[Table, ...] = (FACT_EVENT, DIM_AGENT, DIM_DATE, DIM_METRIC, DIM_SHIFT)
DIMENSIONS: tuple[Table, ...] = (DIM_AGENT, DIM_DATE, DIM_METRIC, DIM_SHIFT)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def table_of(row: Row) -> Table:
    for table in TABLES:
        if isinstance(row, table.row_type):
            return table
    raise TypeError(f"not a star-schema row: {type(row).__name__}")


def key_of(row: Row) -> str:
    return str(getattr(row, table_of(row).key))

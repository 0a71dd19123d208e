"""The push dataset as Power BI sees it, derived from core.schema: tables, relationships, DAX, rows."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from functools import cache
from typing import Any

from core.errors import SinkPermanentError
from core.model import MetricID, Row
from core.schema import DIMENSIONS, FACT_EVENT, TABLES, Column, ColumnType, Table

MAX_STRING_CHARS = 4_000  # "characters per string value" (DESIGN §4 / push-dataset limits)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    expression: str
    format_string: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "expression": self.expression}
        if self.format_string:
            out["formatString"] = self.format_string
        return out


@dataclass(frozen=True, slots=True)
class Relationship:
    """Many-to-one from the fact to a dimension, filtering one way (DESIGN §3)."""

    from_table: str
    from_column: str
    to_table: str
    to_column: str

    @property
    def name(self) -> str:
        return f"{self.from_table}_{self.to_table}"

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fromTable": self.from_table,
            "fromColumn": self.from_column,
            "toTable": self.to_table,
            "toColumn": self.to_column,
            "crossFilteringBehavior": "OneDirection",
        }

    def __str__(self) -> str:
        return f"{self.from_table}[{self.from_column}] → {self.to_table}[{self.to_column}]"


def _metric_measure(metric: MetricID) -> Measure:
    return Measure(
        metric.value.title(),
        f'CALCULATE([Activities], FactEvent[MetricID] = "{metric.value}")',
        "#,0",
    )


# Activities counts DISTINCT EventKeys: a row replayed after a crash between the sink and the
# ledger commit never changes a number (DESIGN §2 "Exactly once").
GOAL_DAX = """
VAR Agents =
    CALCULATE ( COUNTROWS ( DimAgent ), KEEPFILTERS ( DimAgent[Active] = TRUE () ) )
RETURN
    SUMX (
        DimMetric,
        VAR MonthKey = DimMetric[Month]
        VAR Workdays =
            COUNTROWS (
                FILTER (
                    DimDate,
                    DimDate[IsWorkday] && FORMAT ( DimDate[Date], "yyyy-MM" ) = MonthKey
                )
            )
        RETURN DimMetric[DefaultGoal] * Agents * Workdays
    )
""".strip()

STATUS_DAX = """
VAR Attainment = [Attainment %]
VAR YellowFloor = MAX ( DimMetric[YellowFloorPct] )
RETURN
    SWITCH (
        TRUE (),
        ISBLANK ( Attainment ), BLANK (),
        Attainment >= 1, "Green",
        Attainment >= YellowFloor, "Yellow",
        "Red"
    )
""".strip()

MEASURES: tuple[Measure, ...] = (
    Measure("Activities", "DISTINCTCOUNT(FactEvent[EventKey])", "#,0"),
    *(_metric_measure(m) for m in MetricID),
    # DefaultGoal is per agent per workday: times the active agents in context, times the
    # workdays of each month in the date context (DESIGN §3, FactDailyMetric computed by DAX).
    Measure("Goal", GOAL_DAX, "#,0"),
    Measure("Attainment %", "DIVIDE([Activities], [Goal])", "0.0%"),
    Measure("Status", STATUS_DAX),
)
MEASURE_TABLE = FACT_EVENT.name

RELATIONSHIPS: tuple[Relationship, ...] = tuple(
    Relationship(FACT_EVENT.name, dim.key, dim.name, dim.key)
    for dim in DIMENSIONS
    if dim.key in FACT_EVENT.column_names
)


def table_body(table: Table) -> dict[str, Any]:
    """A swagger `Table`: name, columns (name + dataType), measures on the fact table."""
    body: dict[str, Any] = {
        "name": table.name,
        "columns": [{"name": c.name, "dataType": c.type.value} for c in table.columns],
    }
    if table.name == MEASURE_TABLE:
        body["measures"] = [m.body() for m in MEASURES]
    return body


def dataset_body(name: str) -> dict[str, Any]:
    """A swagger `CreateDatasetRequest` for the whole star schema."""
    return {
        "name": name,
        "defaultMode": "Push",
        "tables": [table_body(t) for t in TABLES],
        "relationships": [r.body() for r in RELATIONSHIPS],
    }


# --- rows -----------------------------------------------------------------------------------


def _datetime(value: Any) -> str:
    # ISO 8601; aware instants go out in UTC with "Z", naive ones (local wall time) as is.
    if isinstance(value, datetime):
        instant: datetime = value
        if instant.tzinfo is not None:
            instant = instant.astimezone(UTC).replace(tzinfo=None)
            return instant.isoformat(timespec="milliseconds") + "Z"
        return instant.isoformat(timespec="milliseconds")
    if isinstance(value, date):  # DimDate[Date] is a DateTime column at midnight
        return f"{value.isoformat()}T00:00:00.000"
    raise TypeError("expected a datetime or a date")


def _string(value: Any) -> str:
    text: object = value.value if isinstance(value, Enum) else value
    if not isinstance(text, str):
        raise TypeError("expected a string")
    if len(text) > MAX_STRING_CHARS:
        raise ValueError(f"{len(text)} characters (Power BI keeps at most {MAX_STRING_CHARS})")
    return text


def _int64(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("outside Int64")
    return value


def _double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


_CONVERT: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.STRING: _string,
    ColumnType.INT64: _int64,
    ColumnType.DOUBLE: _double,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.DATETIME: _datetime,
}


# json.dumps with options builds a new encoder per call; one shared encoder is ~2x faster.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@cache
def _plan(table: Table) -> tuple[tuple[Column, Callable[[Any], Any]], ...]:
    return tuple((column, _CONVERT[column.type]) for column in table.columns)


def encode_row(row: Row, table: Table) -> str:
    """One row as the JSON object PostRows carries. A value Power BI would refuse (a string
    over 4,000 characters, a wrong type) fails this row's caller alone, before any request."""
    values: dict[str, Any] = {}
    for column, convert in _plan(table):
        value = getattr(row, column.name)
        try:
            if value is None:
                if not column.nullable:
                    raise ValueError("empty, and the column is not nullable")
                values[column.name] = None
            else:
                values[column.name] = convert(value)
        except (TypeError, ValueError) as exc:
            key = getattr(row, table.key, "?")
            raise SinkPermanentError(
                f"{table.name}[{column.name}] of {table.key}={key!s:.80}: {exc}"
            ) from None
    return _ENCODE(values)

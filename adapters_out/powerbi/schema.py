"""The push dataset as Power BI sees it, derived from core.schema: tables, relationships, DAX, rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulse.adapters_out.push.rows import RowEncoder
from pulse.core.model import MetricID, Row
from pulse.core.schema import DIMENSIONS, FACT_EVENT, TABLES, Table

MAX_STRING_CHARS = 4_000  # "characters per string value" (DESIGN §4 / push-dataset limits)


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
# Goal: per agent and workday, summed over each workday in context and the agents on the roster
# that day (ActiveFrom … ActiveTo; no ActiveTo: while Active), so a past day keeps its goal when
# someone leaves; an agent's own goal (the DimMetric row `<MetricMonthKey>:<AgentKey>`) wins
# over the month's (AgentKey blank). FactEvent[MetricID] does not filter DimMetric (the
# relationship runs from the fact), so a visual grouped on it narrows the metrics here.
GOAL_DAX = """
VAR ByFactMetric = ISFILTERED ( FactEvent[MetricID] )
VAR FactMetrics = FILTERS ( FactEvent[MetricID] )
VAR Metrics =
    FILTER (
        DimMetric,
        ISBLANK ( DimMetric[AgentKey] )
            && ( NOT ByFactMetric || DimMetric[MetricID] IN FactMetrics )
    )
VAR Workdays = FILTER ( DimDate, DimDate[IsWorkday] )
VAR Agents = DimAgent
RETURN
    SUMX (
        Metrics,
        VAR MonthKey = DimMetric[Month]
        VAR MetricMonthKey = DimMetric[MetricMonthKey]
        VAR DefaultGoal = DimMetric[DefaultGoal]
        RETURN
            SUMX (
                FILTER ( Workdays, FORMAT ( DimDate[Date], "yyyy-MM" ) = MonthKey ),
                VAR Day = DimDate[Date]
                RETURN
                    SUMX (
                        FILTER (
                            Agents,
                            ( ISBLANK ( DimAgent[ActiveFrom] ) || DimAgent[ActiveFrom] <= Day )
                                && IF (
                                    ISBLANK ( DimAgent[ActiveTo] ),
                                    DimAgent[Active],
                                    Day <= DimAgent[ActiveTo]
                                )
                        ),
                        VAR OwnKey = MetricMonthKey & ":" & DimAgent[AgentKey]
                        VAR OwnGoal =
                            CALCULATE (
                                MAX ( DimMetric[DefaultGoal] ),
                                REMOVEFILTERS ( DimMetric ),
                                DimMetric[MetricMonthKey] = OwnKey
                            )
                        RETURN IF ( ISBLANK ( OwnGoal ), DefaultGoal, OwnGoal )
                    )
            )
    )
""".strip()

STATUS_DAX = """
VAR Attainment = [Attainment %]
VAR ByFactMetric = ISFILTERED ( FactEvent[MetricID] )
VAR FactMetrics = FILTERS ( FactEvent[MetricID] )
VAR YellowFloor =
    MAXX (
        FILTER ( DimMetric, NOT ByFactMetric || DimMetric[MetricID] IN FactMetrics ),
        DimMetric[YellowFloorPct]
    )
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
    # DefaultGoal is per agent per workday: summed over the workdays in context and the agents
    # on the roster each day (DESIGN §3, FactDailyMetric computed by DAX).
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


# --- rows ---------------------------------------------------------------------------------------

_ENCODER = RowEncoder(max_string_chars=MAX_STRING_CHARS, sink="Power BI")


def encode_row(row: Row, table: Table) -> str:
    """One row as the JSON object PostRows carries. A value Power BI would refuse (a string
    over 4,000 characters, a wrong type) fails this row's caller alone, before any request."""
    return _ENCODER.encode(row, table)

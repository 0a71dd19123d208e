"""The dataset definition comes from core.schema, passes the swagger, and rows encode as Power BI reads them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest

from pulse.adapters_out.powerbi.schema import MEASURES, RELATIONSHIPS, dataset_body, encode_row
from pulse.core.calendar import dim_date
from pulse.core.errors import SinkPermanentError
from pulse.core.model import DimMetric, MetricID
from pulse.core.schema import DIM_DATE, DIM_METRIC, DIMENSIONS, FACT_EVENT, TABLES
from tests.emulators import swagger
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.powerbi.fixtures import fact


def test_the_definition_passes_the_swagger_and_the_emulators_checks() -> None:
    body = dataset_body("Pulse")

    assert swagger.validate(body, "CreateDatasetRequest") == []
    PowerBIEmulator().create_dataset(body)  # raises on any problem


def test_every_table_and_column_comes_from_core_schema_with_exact_types() -> None:
    tables = {t["name"]: t for t in dataset_body("Pulse")["tables"]}

    assert list(tables) == [t.name for t in TABLES]
    for table in TABLES:
        assert tables[table.name]["columns"] == [
            {"name": c.name, "dataType": c.type.value} for c in table.columns
        ]
    types = {c["dataType"] for t in tables.values() for c in t["columns"]}
    assert types == {"Int64", "Double", "Boolean", "DateTime", "String"}


def test_the_fact_relates_to_every_dimension_one_way() -> None:
    assert {(r.from_table, r.from_column, r.to_table, r.to_column) for r in RELATIONSHIPS} == {
        ("FactEvent", d.key, d.name, d.key) for d in DIMENSIONS
    }
    for body in dataset_body("Pulse")["relationships"]:
        assert body["crossFilteringBehavior"] == "OneDirection"


def test_the_measures_count_distinct_event_keys() -> None:
    measures = {m.name: m.expression for m in MEASURES}

    assert measures["Activities"] == "DISTINCTCOUNT(FactEvent[EventKey])"
    for name, metric in [
        ("Calls", "CALLS"),
        ("Texts", "TEXTS"),
        ("Emails", "EMAILS"),
        ("Cases", "CASES"),
    ]:
        assert measures[name] == f'CALCULATE([Activities], FactEvent[MetricID] = "{metric}")'
    assert "DimDate[IsWorkday]" in measures["Goal"]
    assert measures["Attainment %"] == "DIVIDE([Activities], [Goal])"
    status = measures["Status"]
    assert "Attainment >= 1" in status and "DimMetric[YellowFloorPct]" in status
    assert ['"Green"', '"Yellow"', '"Red"'] == [
        w for w in ('"Green"', '"Yellow"', '"Red"') if w in status
    ]
    fact_table = next(t for t in dataset_body("Pulse")["tables"] if t["name"] == "FactEvent")
    assert [m["name"] for m in fact_table["measures"]] == list(measures)


def test_a_fact_encodes_with_iso_datetimes_and_plain_values() -> None:
    row = json.loads(encode_row(fact(0), FACT_EVENT))

    assert row == {
        "EventKey": "aloware:0",
        "Source": "aloware",
        "MetricID": "CALLS",
        "AgentKey": "2",
        "DateKey": 20251105,
        "ShiftKey": "ALLDAY",
        "OccurredAtUtc": "2025-11-05T17:00:00.000Z",
        "OccurredAtLocal": "2025-11-05T12:00:00.000",
        "MetricMonthKey": "2025-11:CALLS",
        "DurationSec": 42,
    }


def test_dates_encode_as_midnight_datetimes_and_doubles_as_numbers() -> None:
    day = json.loads(encode_row(dim_date(date(2025, 11, 5)), DIM_DATE))
    metric = json.loads(
        encode_row(DimMetric("2025-11:CALLS", MetricID.CALLS, "2025-11", 60, 0.8, 1), DIM_METRIC)
    )

    assert day["Date"] == "2025-11-05T00:00:00.000"
    assert (day["IsWorkday"], day["DayName"]) == (True, "Wednesday")
    assert metric["DefaultGoal"] == 60.0 and isinstance(metric["DefaultGoal"], float)


def test_a_nullable_column_may_be_empty() -> None:
    row = json.loads(encode_row(replace(fact(0), DurationSec=None), FACT_EVENT))
    assert row["DurationSec"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AgentKey": "x" * 4_001}, "4001 characters"),
        ({"AgentKey": None}, "not nullable"),
        ({"DateKey": "20251105"}, "expected an integer"),
        ({"DateKey": True}, "expected an integer"),
        ({"OccurredAtUtc": "2025-11-05"}, "expected a datetime"),
    ],
)
def test_a_value_power_bi_would_refuse_fails_before_any_request(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(SinkPermanentError, match=message) as caught:
        encode_row(replace(fact(0), **change), FACT_EVENT)  # type: ignore[arg-type]
    assert "EventKey=aloware:0" in str(caught.value)


def test_the_goal_counts_the_agents_on_the_roster_each_day_not_those_active_now() -> None:
    """No DAX engine runs here: the expression is checked for the rule the local view computes
    (tests/integration/test_history.py proves that rule keeps past days put)."""
    goal = " ".join({m.name: m.expression for m in MEASURES}["Goal"].split())

    assert "KEEPFILTERS ( DimAgent[Active] = TRUE () )" not in goal
    assert "ISBLANK ( DimAgent[ActiveFrom] ) || DimAgent[ActiveFrom] <= Day" in goal
    assert (
        "IF ( ISBLANK ( DimAgent[ActiveTo] ), DimAgent[Active], Day <= DimAgent[ActiveTo] )" in goal
    )
    assert 'FILTER ( Workdays, FORMAT ( DimDate[Date], "yyyy-MM" ) = MonthKey )' in goal


def test_goal_and_status_follow_a_visual_grouped_on_the_facts_metric_column() -> None:
    """FactEvent[MetricID] does not filter DimMetric (the relationship runs from the fact):
    Goal and Status narrow DimMetric to the fact column's filter, so grouping on either
    metric column gives one metric's goal, not every metric's summed."""
    measures = {m.name: " ".join(m.expression.split()) for m in MEASURES}

    for name in ("Goal", "Status"):
        assert "VAR ByFactMetric = ISFILTERED ( FactEvent[MetricID] )" in measures[name]
        assert "VAR FactMetrics = FILTERS ( FactEvent[MetricID] )" in measures[name]
        assert "NOT ByFactMetric || DimMetric[MetricID] IN FactMetrics" in measures[name]
    assert "IF ( ISFILTERED" not in measures["Goal"]  # a table-valued IF is not DAX


def test_an_agents_own_goal_wins_over_the_months_in_the_goal() -> None:
    goal = " ".join({m.name: m.expression for m in MEASURES}["Goal"].split())

    assert "FILTER ( DimMetric, ISBLANK ( DimMetric[AgentKey] )" in goal  # the month's rows
    assert 'VAR OwnKey = MetricMonthKey & ":" & DimAgent[AgentKey]' in goal
    assert "RETURN IF ( ISBLANK ( OwnGoal ), DefaultGoal, OwnGoal )" in goal

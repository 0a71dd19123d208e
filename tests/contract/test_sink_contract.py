"""The Sink port's contract as a reader sees it, run over every sink (see conftest SINK_FACTORIES)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pulse.core.calendar import dim_date
from pulse.core.model import DateKey, DimAgent, DimMetric, DimShift, EventKey, FactEvent, MetricID
from tests.contract.conftest import SinkUnderTest

SYNCED = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)


def call(n: int, agent: str = "2") -> FactEvent:
    occurred = datetime(2025, 11, 5, 17, n % 60, tzinfo=UTC)
    return FactEvent(
        EventKey=EventKey(f"aloware:{n}"),
        Source="aloware",
        MetricID=MetricID.CALLS,
        AgentKey=agent,
        DateKey=DateKey(20251105),
        ShiftKey="ALLDAY",
        OccurredAtUtc=occurred,
        OccurredAtLocal=occurred.replace(tzinfo=None),
        MetricMonthKey="2025-11:CALLS",
        DurationSec=42,
    )


def agent(key: str, name: str) -> DimAgent:
    return DimAgent(key, name, f"{name.lower()}@example.test", "8465", True, SYNCED)


def distinct_events(rows: list[dict[str, object]]) -> set[object]:
    """What `Activities = DISTINCTCOUNT(FactEvent[EventKey])` counts."""
    return {row["EventKey"] for row in rows}


async def test_appended_facts_are_what_a_reader_sees(sink_under_test: SinkUnderTest) -> None:
    await sink_under_test.sink.append([call(1), call(2, agent="3")])

    rows = await sink_under_test.rows("FactEvent")

    assert distinct_events(rows) == {"aloware:1", "aloware:2"}
    by_key = {row["EventKey"]: row for row in rows}
    assert by_key["aloware:2"]["AgentKey"] == "3"
    assert by_key["aloware:1"]["MetricID"] == "CALLS"
    assert by_key["aloware:1"]["DateKey"] == 20251105
    assert by_key["aloware:1"]["MetricMonthKey"] == "2025-11:CALLS"


async def test_appending_the_same_facts_again_never_doubles_a_count(
    sink_under_test: SinkUnderTest,
) -> None:
    sink = sink_under_test.sink
    await sink.append([call(1), call(2)])

    await sink.append([call(1), call(2), call(3)])  # a crash between sink and ledger commit
    await sink.append([call(3), call(3)])

    assert distinct_events(await sink_under_test.rows("FactEvent")) == {
        "aloware:1",
        "aloware:2",
        "aloware:3",
    }


async def test_appending_nothing_is_harmless(sink_under_test: SinkUnderTest) -> None:
    await sink_under_test.sink.append([])

    assert await sink_under_test.rows("FactEvent") == []


async def test_upsert_lands_mixed_dimension_rows_in_their_tables(
    sink_under_test: SinkUnderTest,
) -> None:
    metric = DimMetric("2025-11:CALLS", MetricID.CALLS, "2025-11", 60.0, 0.8, 1)
    shift = DimShift("ALLDAY", "All day", "00:00", "00:00", "Mon,Tue,Wed,Thu,Fri,Sat,Sun")

    await sink_under_test.sink.upsert(
        [agent("2", "John"), dim_date(date(2025, 11, 5)), metric, shift, agent("3", "Jane")]
    )

    agents = await sink_under_test.rows("DimAgent")
    assert {(r["AgentKey"], r["AgentName"]) for r in agents} == {("2", "John"), ("3", "Jane")}
    (day,) = await sink_under_test.rows("DimDate")
    assert (day["DateKey"], day["DayName"]) == (20251105, "Wednesday")
    (goal,) = await sink_under_test.rows("DimMetric")
    assert (goal["MetricMonthKey"], goal["DefaultGoal"]) == ("2025-11:CALLS", 60.0)
    assert [r["ShiftKey"] for r in await sink_under_test.rows("DimShift")] == ["ALLDAY"]
    assert await sink_under_test.rows("FactEvent") == []


async def test_replace_leaves_exactly_the_given_rows(sink_under_test: SinkUnderTest) -> None:
    sink = sink_under_test.sink
    await sink.upsert([agent("1", "Gone"), agent("2", "John"), dim_date(date(2025, 11, 5))])

    await sink.replace("DimAgent", [agent("2", "John Renamed"), agent("4", "New")])

    agents = await sink_under_test.rows("DimAgent")
    assert sorted((r["AgentKey"], r["AgentName"]) for r in agents) == [
        ("2", "John Renamed"),
        ("4", "New"),
    ]
    assert [r["DateKey"] for r in await sink_under_test.rows("DimDate")] == [20251105]


async def test_replace_with_no_rows_empties_the_table(sink_under_test: SinkUnderTest) -> None:
    sink = sink_under_test.sink
    await sink.upsert([agent("1", "Gone")])

    await sink.replace("DimAgent", [])

    assert await sink_under_test.rows("DimAgent") == []


async def test_ping_answers(sink_under_test: SinkUnderTest) -> None:
    await sink_under_test.sink.ping()

"""No control-plane write leaves a fact pointing at a missing dimension row, on every sink
(issue 12 §2): facts exist first, then each control-plane change runs against the sink."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from pulse.core import calendar
from pulse.core.control import ControlPorts, apply_metrics, apply_shifts, extend_dates, sync_agents
from pulse.core.dimensions import MetricsDocument, ShiftsDocument
from pulse.core.ingest import IngestConfig, dimension_rows
from pulse.core.model import (
    DateKey,
    EventKey,
    FactEvent,
    Goal,
    MetricID,
    RosterAgent,
    RosterSnapshot,
    ShiftRule,
)
from pulse.core.schema import REFERENCES, orphans
from tests.contract.conftest import SinkUnderTest
from tests.fakes import CALLER, World, config

ZONE = ZoneInfo("America/New_York")
JOHN = RosterAgent("2", "John Agent", "john@example.test")
JANE = RosterAgent("3", "Jane Agent", "jane@example.test")
DAY = ShiftRule("DAY", "Day", time(8, 0), time(20, 0))
NIGHT = ShiftRule("NIGHT", "Night", time(20, 0), time(8, 0))


def fact(n: int, agent: str, rules: tuple[ShiftRule, ...]) -> FactEvent:
    """A call as ingest builds it (the day before the World's clock), keyed by these rules."""
    occurred = datetime(2026, 11, 4, 14, n % 60, tzinfo=UTC)
    local = calendar.local_time(occurred, ZONE)
    return FactEvent(
        EventKey=EventKey(f"aloware:{n}"),
        Source="aloware",
        MetricID=MetricID.CALLS,
        AgentKey=agent,
        DateKey=DateKey(calendar.date_key(local.date())),
        ShiftKey=calendar.shift_for(occurred, ZONE, rules),
        OccurredAtUtc=occurred,
        OccurredAtLocal=local.replace(tzinfo=None),
        MetricMonthKey=calendar.metric_month_key(local.date(), MetricID.CALLS),
        DurationSec=30,
    )


async def ingest(
    under_test: SinkUnderTest, facts: list[FactEvent], rules: tuple[ShiftRule, ...]
) -> None:
    """What ingest writes: the rows the facts reference (pushed once), then the facts."""
    ingest_config = IngestConfig(
        zone=ZONE, shift_rules=rules, goals={m: Goal(m, 10.0, 0.8) for m in MetricID}
    )
    roster = RosterSnapshot((JOHN, JANE), ring_group_id="8465")
    await under_test.sink.upsert(
        dimension_rows(facts, ingest_config, roster, datetime(2026, 11, 4, tzinfo=UTC))
    )
    await under_test.sink.append(facts)


async def missing_rows(under_test: SinkUnderTest) -> list[str]:
    facts = await under_test.rows("FactEvent")
    assert facts, "the check needs facts to check"
    dims = {t.name: await under_test.rows(t.name) for t in REFERENCES}
    return [str(o) for o in orphans(facts, dims)]


async def test_every_key_a_fact_carries_keeps_its_row_through_every_control_plane_change(
    sink_under_test: SinkUnderTest,
) -> None:
    world = World(RosterSnapshot((JOHN, JANE), ring_group_id="8465"))
    ports: ControlPorts = replace(world.ports, sink=sink_under_test.sink)
    setting = (calendar.ALL_DAY,)
    await sync_agents(ports, config(), CALLER)
    await ingest(sink_under_test, [fact(1, "2", setting), fact(2, "3", setting)], setting)
    assert await missing_rows(sink_under_test) == []

    # Jane leaves the ring group: her facts keep her row.
    world.roster.current = RosterSnapshot((JOHN,), ring_group_id="8465")
    await sync_agents(ports, config(), CALLER)
    assert await missing_rows(sink_under_test) == []

    # New shifts without ALLDAY, which the first facts carry; then facts on the new shifts,
    # then a version without them.
    await apply_shifts(ShiftsDocument(1, (DAY, NIGHT)), ports, config(), CALLER)
    assert await missing_rows(sink_under_test) == []
    await ingest(sink_under_test, [fact(3, "2", (DAY, NIGHT))], (DAY, NIGHT))
    await apply_shifts(ShiftsDocument(2, (calendar.ALL_DAY,)), ports, config(), CALLER)
    assert await missing_rows(sink_under_test) == []

    goals = {MetricID.CALLS: Goal(MetricID.CALLS, 70.0, 0.75)}
    await apply_metrics(MetricsDocument("2026-12", 1, goals), ports, config(), CALLER)
    await extend_dates(ports, config(), CALLER)
    assert await missing_rows(sink_under_test) == []

    shifts = {r["ShiftKey"]: r for r in await sink_under_test.rows("DimShift")}
    assert shifts["DAY"]["Retired"] in (True, 1) and shifts["ALLDAY"]["Retired"] in (False, 0)
    agents = {r["AgentKey"]: r for r in await sink_under_test.rows("DimAgent")}
    assert agents["3"]["Active"] in (False, 0)


async def test_the_check_finds_a_fact_whose_row_a_replace_removed(
    sink_under_test: SinkUnderTest,
) -> None:
    setting = (calendar.ALL_DAY,)
    await ingest(sink_under_test, [fact(1, "2", setting)], setting)

    await sink_under_test.sink.replace("DimShift", [])  # what `shifts apply` used to do to ALLDAY

    assert await missing_rows(sink_under_test) == [
        "DimShift[ShiftKey] = 'ALLDAY': 1 fact(s), no row"
    ]

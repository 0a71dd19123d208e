"""Yesterday's numbers stay yesterday's (issue 12 §3): the local report of a past day, through
the real roster sync, metrics apply and warehouse view, before and after a change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.core import calendar
from pulse.core.control import ControlPorts, apply_metrics, extend_dates, sync_agents
from pulse.core.dimensions import MetricsDocument
from pulse.core.ingest import IngestConfig, dimension_rows
from pulse.core.model import (
    DateKey,
    EventKey,
    FactEvent,
    Goal,
    MetricID,
    RosterAgent,
    RosterSnapshot,
)
from tests.fakes import CALLER, World, config

JOHN = RosterAgent("2", "John Agent", "john@example.test")
JANE = RosterAgent("3", "Jane Agent", "jane@example.test")
MAX = RosterAgent("4", "Max Agent", "max@example.test")
THURSDAY, MONDAY = date(2026, 11, 5), date(2026, 11, 9)
DAY = 24 * 3600


def roster(*agents: RosterAgent) -> RosterSnapshot:
    return RosterSnapshot(agents, ring_group_id="8465")


def call(n: int, agent: str, day: date = THURSDAY) -> FactEvent:
    occurred = datetime(day.year, day.month, day.day, 16, n % 60, tzinfo=UTC)
    return FactEvent(
        EventKey=EventKey(f"aloware:{n}"),
        Source="aloware",
        MetricID=MetricID.CALLS,
        AgentKey=agent,
        DateKey=DateKey(calendar.date_key(day)),
        ShiftKey="ALLDAY",
        OccurredAtUtc=occurred,
        OccurredAtLocal=occurred.replace(tzinfo=None),
        MetricMonthKey=calendar.metric_month_key(day, MetricID.CALLS),
    )


class Office:
    """The control plane's fakes around the real warehouse, and ingest's writes into it."""

    def __init__(self, warehouse: SqliteWarehouse) -> None:
        self.world = World(roster(JOHN, JANE))  # its clock: Thursday 2026-11-05, 10:00 New York
        self.warehouse = warehouse
        self.ports: ControlPorts = replace(self.world.ports, sink=warehouse)

    async def ingest(self, facts: list[FactEvent]) -> None:
        ingest = IngestConfig(zone=config().zone, goals=config().goals)
        await self.warehouse.upsert(
            dimension_rows(facts, ingest, self.world.roster.current, self.world.clock.now())
        )
        await self.warehouse.append(facts)

    async def sync(self, *agents: RosterAgent) -> None:
        self.world.roster.current = roster(*agents)
        await sync_agents(self.ports, config(), CALLER)

    async def report(self, day: date) -> list[dict[str, Any]]:
        return await self.warehouse.daily_metrics(calendar.date_key(day))


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Office]:
    warehouse = SqliteWarehouse(tmp_path / "warehouse.sqlite")
    office = Office(warehouse)
    await extend_dates(office.ports, config(), CALLER)
    try:
        yield office
    finally:
        await warehouse.close()


def goals(rows: list[dict[str, Any]], metric: str = "CALLS") -> dict[str, float]:
    return {r["AgentName"]: r["Goal"] for r in rows if r["MetricID"] == metric}


async def test_a_past_days_report_is_identical_after_an_agent_leaves_and_the_sync_runs(
    office: Office,
) -> None:
    await office.sync(JOHN, JANE)
    await office.ingest([call(1, "2"), call(2, "2")])  # Jane made no call on Thursday
    office.world.clock.advance(DAY)
    await office.sync(JOHN, JANE)  # Friday: both still there
    before = await office.report(THURSDAY)
    assert goals(before) == {"John Agent": 10.0, "Jane Agent": 10.0}  # the team's: 20

    office.world.clock.advance(DAY)
    await office.sync(JOHN)  # Saturday: Jane has left the ring group

    assert await office.report(THURSDAY) == before
    jane = {r["AgentKey"]: r for r in await office.warehouse.rows("DimAgent")}["3"]
    assert (jane["Active"], jane["ActiveFrom"], jane["ActiveTo"]) == (0, None, "2026-11-06")
    assert goals(await office.report(MONDAY)) == {"John Agent": 10.0}  # no goal once gone


async def test_an_agent_who_joins_adds_no_goal_to_days_before_the_sync_that_found_them(
    office: Office,
) -> None:
    await office.sync(JOHN, JANE)
    await office.ingest([call(1, "2")])
    before = await office.report(THURSDAY)

    office.world.clock.advance(DAY)
    await office.sync(JOHN, JANE, MAX)  # Friday: Max joins

    assert await office.report(THURSDAY) == before
    assert goals(await office.report(date(2026, 11, 6))) == {
        "John Agent": 10.0,
        "Jane Agent": 10.0,
        "Max Agent": 10.0,
    }


async def test_an_agent_who_left_before_still_shows_the_work_of_their_last_day(
    office: Office,
) -> None:
    await office.sync(JOHN, JANE)
    office.world.clock.advance(DAY)
    await office.ingest([call(1, "3", day=date(2026, 11, 6))])  # Jane works Friday
    await office.sync(JOHN, JANE)
    office.world.clock.advance(3 * DAY)
    await office.sync(JOHN)  # Monday: gone

    friday = await office.report(date(2026, 11, 6))
    (calls,) = [r for r in friday if r["AgentKey"] == "3" and r["MetricID"] == "CALLS"]
    assert (calls["Count"], calls["Goal"], calls["Status"]) == (1, 10.0, "Red")


async def test_an_agents_own_goal_changes_only_that_agents_rows(office: Office) -> None:
    await office.sync(JOHN, JANE)
    await office.ingest([call(1, "2"), call(2, "3"), call(3, "3")])
    month = {MetricID.CALLS: Goal(MetricID.CALLS, 10.0, 0.8)}
    await apply_metrics(MetricsDocument("2026-11", 1, month), office.ports, config(), CALLER)
    before = await office.report(THURSDAY)

    await apply_metrics(
        MetricsDocument("2026-11", 2, month, {"3": {MetricID.CALLS: 2.0}}),
        office.ports,
        config(),
        CALLER,
    )

    after = await office.report(THURSDAY)
    changed = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert [(a["AgentKey"], a["MetricID"]) for _, a in changed] == [("3", "CALLS")]
    ((_, jane),) = changed
    assert (jane["Goal"], jane["Attainment"], jane["Status"]) == (2.0, 1.0, "Green")


async def test_each_agent_keeps_their_ring_group_so_the_report_slices_by_team(
    office: Office,
) -> None:
    olga = RosterAgent("9", "Olga Ruiz", "olga@example.test", ring_group_id="8470")
    john = replace(JOHN, ring_group_id="8465")
    await office.sync(john, olga)
    await office.ingest([call(1, "9")])

    agents = {r["AgentKey"]: r["RingGroupId"] for r in await office.warehouse.rows("DimAgent")}
    team = await office.warehouse.daily_metrics(calendar.date_key(THURSDAY), team="8470")

    assert agents == {"2": "8465", "9": "8470"}
    assert {(r["AgentName"], r["RingGroupId"]) for r in team} == {("Olga Ruiz", "8470")}
    assert goals(team) == {"Olga Ruiz": 10.0}  # the team's goal: its agents only

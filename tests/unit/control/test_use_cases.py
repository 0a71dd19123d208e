"""The control-plane use cases with in-memory fakes: what they write, refuse and report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulse.core import calendar
from pulse.core.control import (
    AppliedShiftRules,
    Busy,
    StaleVersion,
    apply_metrics,
    apply_shifts,
    extend_dates,
    sync_agents,
)
from pulse.core.dimensions import MetricsDocument, ShiftsDocument
from pulse.core.errors import SinkTransientError, ValidationFailed
from pulse.core.model import (
    DimAgent,
    DimRow,
    Goal,
    MetricID,
    RosterAgent,
    RosterSnapshot,
    ShiftRule,
)
from pulse.ports.control import AppliedVersion
from tests.fakes import CALLER, World, config

JOHN = RosterAgent("2", "John Agent", "john.agent@example.test")
JANE = RosterAgent("3", "Jane Agent", "jane.agent@example.test")
MAX = RosterAgent("4", "Max Agent", "max.agent@example.test")
ROSTER = RosterSnapshot(agents=(JOHN, JANE), ring_group_id="8465")


def metrics(month: str, version: int, calls: float = 60, floor: float = 0.8) -> MetricsDocument:
    return MetricsDocument(month, version, {MetricID.CALLS: Goal(MetricID.CALLS, calls, floor)})


def shifts(*rules: ShiftRule, version: int = 1, allow_unassigned: bool = False) -> ShiftsDocument:
    return ShiftsDocument(version, rules, allow_unassigned)


DAY = ShiftRule("DAY", "Day", time(8, 0), time(20, 0))
NIGHT = ShiftRule("NIGHT", "Night", time(20, 0), time(8, 0))


# ---- sync_agents -----------------------------------------------------------------------------


async def test_sync_replaces_dim_agent_with_exactly_the_roster_and_refreshes_the_gate() -> None:
    world = World(ROSTER)
    world.sink.tables["DimAgent"] = {
        "99": DimAgent("99", "Stale", None, None, True, world.clock.now())
    }

    summary = await sync_agents(world.ports, config(), CALLER)

    rows = world.sink.rows("DimAgent")
    assert sorted(r.AgentKey for r in rows if isinstance(r, DimAgent)) == ["2", "3"]
    assert all(isinstance(r, DimAgent) and r.Active and r.RingGroupId == "8465" for r in rows)
    assert world.roster.refreshed == [ROSTER]
    assert (summary.outcome, summary.counts["added"], summary.version) == ("applied", 2, 1)
    assert world.audit.records[-1].outcome == "applied"
    assert {"dim:DimAgent:2", "dim:DimAgent:3"} <= world.ledger.done


async def test_an_agent_who_left_the_roster_stays_as_inactive_for_their_facts() -> None:
    world = World(ROSTER)
    await sync_agents(world.ports, config(), CALLER)
    world.roster.current = RosterSnapshot(agents=(JOHN,), ring_group_id="8465")

    summary = await sync_agents(world.ports, config(), CALLER)

    by_key = {r.AgentKey: r for r in world.sink.rows("DimAgent") if isinstance(r, DimAgent)}
    assert (by_key["2"].Active, by_key["3"].Active) == (True, False)
    assert summary.counts["changed"] == 1 and summary.version == 2
    assert any(line.startswith("~ 3 (Active: True → False") for line in summary.changes)


async def test_a_dry_sync_shows_the_diff_and_writes_nothing_but_its_audit() -> None:
    world = World(ROSTER)

    summary = await sync_agents(world.ports, config(), CALLER, dry_run=True)

    assert world.wrote_nothing()
    assert summary.outcome == "dry_run" and summary.changes == ("+ 2", "+ 3")
    assert [r.outcome for r in world.audit.records] == ["dry_run"]


async def test_an_empty_roster_answer_is_refused_rather_than_deactivating_everyone() -> None:
    world = World(ROSTER)
    await sync_agents(world.ports, config(), CALLER)
    world.roster.current = RosterSnapshot(agents=(), ring_group_id="8465")

    with pytest.raises(ValidationFailed, match="no agents; refusing to deactivate 2"):
        await sync_agents(world.ports, config(), CALLER)


async def test_an_allow_all_roster_leaves_dim_agent_to_ingest() -> None:
    world = World(RosterSnapshot(agents=(), count_everyone=True))

    summary = await sync_agents(world.ports, config(), CALLER)

    assert summary.outcome.startswith("skipped") and world.wrote_nothing()


async def test_a_second_caller_is_refused_while_the_lease_is_held() -> None:
    world = World(ROSTER)
    world.leases.held["control:DimAgent"] = "another-replica"

    with pytest.raises(Busy, match="another caller"):
        await sync_agents(world.ports, config(), CALLER)
    assert world.sink.writes == 0


# ---- extend_dates ----------------------------------------------------------------------------


async def test_extend_dates_pushes_each_date_of_the_window_once() -> None:
    world = World()
    seen: list[tuple[int, int]] = []

    first = await extend_dates(
        world.ports, config(), CALLER, progress=lambda d, t: seen.append((d, t))
    )
    second = await extend_dates(world.ports, config(), CALLER)

    assert first.counts == {"window": 62, "pushed": 62, "already": 0}
    assert second.counts == {"window": 62, "pushed": 0, "already": 62}
    assert second.outcome == "unchanged"
    assert len(world.sink.rows("DimDate")) == 62 and seen[-1] == (62, 62)
    assert len(world.ledger.forever) == 62  # no TTL: a purge must never re-push a date


async def test_extend_dates_skips_dates_ingest_already_pushed() -> None:
    world = World()
    world.ledger.mark_done(f"dim:DimDate:{calendar.date_key(world.clock.now().date())}")

    summary = await extend_dates(world.ports, config(), CALLER)

    assert summary.counts["pushed"] == 61 and summary.counts["already"] == 1


async def test_a_dry_extend_writes_nothing() -> None:
    world = World()
    summary = await extend_dates(world.ports, config(), CALLER, dry_run=True)
    assert world.wrote_nothing() and summary.counts["window"] == 62


async def test_a_dry_extend_counts_what_the_real_run_would_push() -> None:
    world = World()
    world.ledger.mark_done(f"dim:DimDate:{calendar.date_key(world.clock.now().date())}")

    dry = await extend_dates(world.ports, config(), CALLER, dry_run=True)
    real = await extend_dates(world.ports, config(), CALLER)

    assert dry.counts["to push"] == real.counts["pushed"] == 61
    assert dry.counts["already"] == real.counts["already"] == 1


async def test_a_failed_date_push_releases_its_claims_and_the_lease_for_the_next_run() -> None:
    world = World()

    async def sink_down(rows: Sequence[DimRow]) -> None:
        raise SinkTransientError("sink down")

    world.sink.upsert = sink_down  # type: ignore[method-assign]
    with pytest.raises(SinkTransientError):
        await extend_dates(world.ports, config(), CALLER)
    assert not world.ledger.pending and not world.ledger.done and not world.leases.held

    del world.sink.upsert
    summary = await extend_dates(world.ports, config(), CALLER)
    assert summary.counts == {"window": 62, "pushed": 62, "already": 0}


# ---- apply_metrics ---------------------------------------------------------------------------


async def test_metrics_for_a_month_rewrite_dim_metric_with_the_new_goal() -> None:
    world = World()

    summary = await apply_metrics(metrics("2026-11", 1, calls=75), world.ports, config(), CALLER)

    row = world.sink.tables["DimMetric"]["2026-11:CALLS"]
    assert (row.DefaultGoal, row.Version) == (75, 1)  # type: ignore[union-attr]
    texts = world.sink.tables["DimMetric"]["2026-11:TEXTS"]
    assert (texts.DefaultGoal, texts.Version) == (10, 0)  # type: ignore[union-attr]
    assert (
        summary.version == 1
        and "~ 2026-11:CALLS (DefaultGoal: 10.0 → 75.0, Version: 0 → 1)" in summary.changes
    )


@pytest.mark.parametrize("version", [1, 2])
async def test_an_older_or_equal_version_is_rejected_with_a_clear_message(version: int) -> None:
    world = World()
    await apply_metrics(metrics("2026-11", 2), world.ports, config(), CALLER)
    writes = world.sink.writes

    with pytest.raises(
        StaleVersion, match=f"version: {version} is not newer than the applied version 2"
    ):
        await apply_metrics(metrics("2026-11", version, calls=1), world.ports, config(), CALLER)

    assert world.sink.writes == writes
    assert world.audit.records[-1].outcome == "stale"


async def test_a_new_month_is_appended_and_earlier_months_kept() -> None:
    world = World()
    await apply_metrics(metrics("2026-10", 1, calls=50), world.ports, config(), CALLER)
    await apply_metrics(metrics("2026-11", 1, calls=70), world.ports, config(), CALLER)

    table = world.sink.tables["DimMetric"]
    assert table["2026-10:CALLS"].DefaultGoal == 50  # type: ignore[union-attr]
    assert table["2026-11:CALLS"].DefaultGoal == 70  # type: ignore[union-attr]
    assert sorted(world.versions.documents) == ["dim_metric:2026-10", "dim_metric:2026-11"]


async def test_months_with_only_default_goals_survive_the_rewrite_and_are_not_pushed_again() -> (
    None
):
    world = World()
    await apply_metrics(metrics("2026-11", 1), world.ports, config(), CALLER)

    months = {r.Month for r in world.sink.rows("DimMetric")}  # type: ignore[union-attr]
    assert {"2026-10", "2026-11", "2026-12"} <= months  # the window around 2026-11-05
    # ingest pushes a month's default row once per ledger key: these are now done, so ingest
    # can never overwrite the operator's goal with a default.
    assert "dim:DimMetric:2026-11:CALLS" in world.ledger.done


async def test_a_dry_metrics_apply_writes_nothing() -> None:
    world = World()
    summary = await apply_metrics(
        metrics("2026-11", 1), world.ports, config(), CALLER, dry_run=True
    )
    assert world.wrote_nothing() and summary.outcome == "dry_run" and summary.changes


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (metrics("2026-13", 1), "month: '2026-13' is not a month"),
        (metrics("2026-11", 0), "version: must be 1 or more"),
        (metrics("2026-11", 1, calls=-1), "metrics.CALLS.defaultGoal: must be ≥ 0"),
        (metrics("2026-11", 1, floor=1.5), "metrics.CALLS.yellowFloorPct: must be within 0–1"),
    ],
)
async def test_a_bad_metrics_payload_names_the_field(
    document: MetricsDocument, message: str
) -> None:
    world = World()
    with pytest.raises(ValidationFailed, match=message):
        await apply_metrics(document, world.ports, config(), CALLER)
    assert world.wrote_nothing()


# ---- apply_shifts ----------------------------------------------------------------------------


async def test_shift_rules_replace_dim_shift_with_an_explicit_unassigned_row() -> None:
    world = World()

    summary = await apply_shifts(shifts(DAY, NIGHT), world.ports, config(), CALLER)

    table = world.sink.tables["DimShift"]
    assert sorted(k for k, r in table.items() if not r.Retired) == ["DAY", "NIGHT", "UNASSIGNED"]
    assert summary.outcome == "applied" and summary.version == 1
    assert "dim:DimShift:DAY" in world.ledger.done


async def test_the_setting_shift_facts_carry_stays_in_dim_shift_marked_retired() -> None:
    world = World()

    await apply_shifts(shifts(DAY, NIGHT), world.ports, config(), CALLER)

    allday = world.sink.tables["DimShift"]["ALLDAY"]  # the SHIFTS default ingest assigned
    assert (allday.Retired, allday.ShiftName, allday.StartLocal) == (True, "All day", "00:00")
    assert not world.sink.tables["DimShift"]["DAY"].Retired


async def test_every_shift_key_ever_applied_stays_retired_and_a_reapplied_key_is_live_again() -> (
    None
):
    world = World()
    allday = calendar.ALL_DAY
    await apply_shifts(shifts(DAY, NIGHT), world.ports, config(), CALLER)
    await apply_shifts(shifts(allday, version=2), world.ports, config(), CALLER)

    table = world.sink.tables["DimShift"]
    assert {k: r.Retired for k, r in table.items()} == {
        "ALLDAY": False,
        "DAY": True,
        "NIGHT": True,
        "UNASSIGNED": False,
    }

    summary = await apply_shifts(shifts(DAY, NIGHT, version=3), world.ports, config(), CALLER)

    table = world.sink.tables["DimShift"]
    assert {k for k, r in table.items() if r.Retired} == {"ALLDAY"}
    assert "~ DAY (Retired: True → False)" in summary.changes


async def test_ingest_sees_applied_shift_rules_within_the_ttl_without_a_restart() -> None:
    world = World()
    rules = AppliedShiftRules(world.versions, world.clock, ttl=timedelta(seconds=30))
    assert await rules.current() is None  # nothing applied: ingest keeps the SHIFTS setting

    await apply_shifts(shifts(DAY, NIGHT), world.ports, config(), CALLER)
    assert await rules.current() is None  # still the cached answer
    world.clock.advance(30)

    assert await rules.current() == (DAY, NIGHT)


async def test_overlapping_shifts_are_rejected_naming_both() -> None:
    early = ShiftRule("EARLY", "Early", time(6, 0), time(9, 0))
    with pytest.raises(ValidationFailed, match=r"DAY and EARLY overlap \(Mon 08:00–Mon 09:00"):
        await apply_shifts(shifts(DAY, NIGHT, early), World().ports, config(), CALLER)


async def test_a_gap_is_rejected_unless_unassigned_is_allowed() -> None:
    world = World()
    with pytest.raises(ValidationFailed, match="Mon 20:00–Tue 08:00 is not covered"):
        await apply_shifts(shifts(DAY), world.ports, config(), CALLER)

    summary = await apply_shifts(shifts(DAY, allow_unassigned=True), world.ports, config(), CALLER)
    assert summary.outcome == "applied"


async def test_weekday_only_shifts_leave_the_weekend_as_a_gap() -> None:
    weekdays = ShiftRule("WEEK", "Week", time(0, 0), time(0, 0), frozenset(range(5)))
    with pytest.raises(ValidationFailed, match="Sat 00:00–Mon 00:00 is not covered"):
        await apply_shifts(shifts(weekdays), World().ports, config(), CALLER)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (ShiftRule("DAY", "Day", time(8, 0, 30), time(20, 0)), r"shifts\[0\].start: whole minutes"),
        (
            ShiftRule("UNASSIGNED", "x", time(8), time(20)),
            r"shifts\[0\].key: 'UNASSIGNED' is reserved",
        ),
        (ShiftRule("DAY", "Day", time(8), time(20), frozenset()), r"shifts\[0\].days"),
    ],
)
async def test_bad_shift_rules_name_the_field(rule: ShiftRule, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        await apply_shifts(shifts(rule, allow_unassigned=True), World().ports, config(), CALLER)


@pytest.mark.parametrize(
    "day", ["2026-03-08", "2026-11-01"]
)  # New York's spring-forward, fall-back
async def test_on_dst_days_every_instant_maps_to_exactly_one_shift(day: str) -> None:
    document = shifts(
        ShiftRule("LATE", "Late", time(1, 30), time(2, 30)),
        ShiftRule("REST", "Rest", time(2, 30), time(1, 30)),
    )
    document.validate()
    zone = ZoneInfo("America/New_York")
    start = datetime.fromisoformat(day).replace(tzinfo=zone).astimezone(UTC)
    keys = {
        calendar.shift_for(start + timedelta(minutes=m), zone, document.rules)
        for m in range(0, 25 * 60, 5)
    }
    assert keys == {"LATE", "REST"}  # never UNASSIGNED, never ambiguous


async def test_stale_shift_versions_are_rejected_and_dry_runs_write_nothing() -> None:
    world = World()
    dry = await apply_shifts(shifts(DAY, NIGHT), world.ports, config(), CALLER, dry_run=True)
    assert world.wrote_nothing()
    assert dry.changes == ("+ DAY", "+ NIGHT", "~ ALLDAY (Retired: False → True)")

    await apply_shifts(shifts(DAY, NIGHT, version=3), world.ports, config(), CALLER)
    with pytest.raises(StaleVersion, match="version: 3 is not newer"):
        await apply_shifts(
            shifts(DAY, allow_unassigned=True, version=3), world.ports, config(), CALLER
        )


async def test_agents_stored_before_periods_were_kept_keep_their_history_at_the_next_sync() -> None:
    world = World(RosterSnapshot(agents=(JOHN,), ring_group_id="8465"))
    body = '{"agents": [{"id": "2", "name": "John Agent", "email": null},'
    body += ' {"id": "3", "name": "Jane Agent", "email": null}], "active": ["2"]}'
    await world.versions.put(AppliedVersion("dim_agent", 4, body, world.clock.now()))

    await sync_agents(world.ports, config(), CALLER)

    by_key = {r.AgentKey: r for r in world.sink.rows("DimAgent")}
    assert (by_key["2"].ActiveFrom, by_key["2"].ActiveTo, by_key["2"].Active) == (None, None, True)
    # left before periods were kept: no period, so no goal on any day (as before)
    assert (by_key["3"].ActiveFrom, by_key["3"].ActiveTo, by_key["3"].Active) == (None, None, False)


async def test_the_roster_period_of_each_agent_survives_the_stored_document() -> None:
    world = World(ROSTER)
    await sync_agents(world.ports, config(), CALLER)
    world.clock.advance(86_400)
    world.roster.current = RosterSnapshot(agents=(JANE, MAX), ring_group_id="8465")

    await sync_agents(world.ports, config(), CALLER)

    by_key = {r.AgentKey: r for r in world.sink.rows("DimAgent")}
    assert (by_key["2"].ActiveFrom, by_key["2"].ActiveTo) == (None, date(2026, 11, 5))
    assert (by_key["3"].ActiveFrom, by_key["3"].ActiveTo) == (None, None)
    assert (by_key["4"].ActiveFrom, by_key["4"].ActiveTo) == (date(2026, 11, 6), None)


async def test_an_agents_own_goals_become_their_rows_beside_the_months() -> None:
    world = World()
    document = MetricsDocument(
        "2026-11",
        1,
        {MetricID.CALLS: Goal(MetricID.CALLS, 60, 0.8)},
        {"3": {MetricID.CALLS: 80, MetricID.TEXTS: 5}},
    )

    summary = await apply_metrics(document, world.ports, config(), CALLER)

    table = world.sink.tables["DimMetric"]
    own = table["2026-11:CALLS:3"]
    assert (own.AgentKey, own.MetricID, own.Month, own.DefaultGoal) == ("3", "CALLS", "2026-11", 80)
    assert (own.YellowFloorPct, own.Version) == (0.8, 1)  # graded on the month's floor
    assert table["2026-11:TEXTS:3"].DefaultGoal == 5
    assert table["2026-11:CALLS"].AgentKey is None and table["2026-11:CALLS"].DefaultGoal == 60
    assert "+ 2026-11:CALLS:3" in summary.changes
    assert MetricsDocument.from_json(document.to_json()) == document


async def test_a_negative_agent_goal_names_the_agent_and_metric() -> None:
    month = {MetricID.CALLS: Goal(MetricID.CALLS, 1, 0.5)}
    document = MetricsDocument("2026-11", 1, month, {"3": {MetricID.CALLS: -1}})
    with pytest.raises(ValidationFailed, match=r"agents\.3\.CALLS: must be ≥ 0"):
        await apply_metrics(document, World().ports, config(), CALLER)

"""Versions you can go back to, with in-memory fakes: history, the same version again, rollback."""

from __future__ import annotations

from datetime import time

import pytest

from pulse.core.control import (
    Busy,
    StaleVersion,
    UnknownVersion,
    apply_metrics,
    apply_shifts,
    payload_hash,
)
from pulse.core.dimensions import MetricsDocument, ShiftsDocument
from pulse.core.errors import ValidationFailed
from pulse.core.history import history, rollback_metrics, rollback_shifts
from pulse.core.model import DimMetric, Goal, MetricID, ShiftRule
from tests.fakes import CALLER, World, config

DAY = ShiftRule("DAY", "Day", time(8, 0), time(20, 0))
NIGHT = ShiftRule("NIGHT", "Night", time(20, 0), time(8, 0))
EARLY = ShiftRule("EARLY", "Early", time(6, 0), time(18, 0))
LATE = ShiftRule("LATE", "Late", time(18, 0), time(6, 0))


def goals(version: int, calls: float) -> MetricsDocument:
    return MetricsDocument("2026-11", version, {MetricID.CALLS: Goal(MetricID.CALLS, calls, 0.8)})


def calls_goal(world: World) -> tuple[float, int]:
    row = world.sink.tables["DimMetric"]["2026-11:CALLS"]
    assert isinstance(row, DimMetric)
    return row.DefaultGoal, row.Version


async def test_history_lists_each_applied_version_with_who_when_hash_and_counts() -> None:
    world = World()
    await apply_metrics(goals(1, 60), world.ports, config(), CALLER)
    world.clock.advance(3600)
    await apply_metrics(goals(4, 75), world.ports, config(), CALLER)

    entries = await history("dim_metric:2026-11", world.ports)

    assert [(e.version, e.applied_by, e.current) for e in entries] == [
        (1, "test", False),
        (4, "test", True),
    ]
    assert entries[1].applied_at == world.clock.now()
    assert entries[1].payload_hash == payload_hash(goals(4, 75).to_json())
    assert entries[1].payload_hash == world.audit.records[-1].payload_hash
    assert entries[0].counts["changed"] == 1 and entries[0].counts["rows"] > 0
    assert entries[1].line().startswith(f"v4  {world.clock.now().isoformat()}  test  sha256:")
    assert entries[1].line().endswith("(applied)")
    assert await history("dim_shift", world.ports) == []


async def test_the_applied_version_sent_again_is_unchanged_writes_nothing_and_is_audited() -> None:
    world = World()
    await apply_metrics(goals(2, 60), world.ports, config(), CALLER)
    writes, kept = world.sink.writes, list(world.versions.kept["dim_metric:2026-11"])

    summary = await apply_metrics(goals(2, 60), world.ports, config(), CALLER)

    assert (summary.outcome, summary.version, summary.dry_run) == ("unchanged", 2, False)
    assert summary.changes[0].startswith("v2 is the applied version (applied ")
    assert world.sink.writes == writes and world.versions.kept["dim_metric:2026-11"] == kept
    assert (world.audit.records[-1].outcome, world.audit.records[-1].version) == ("unchanged", 2)


async def test_the_applied_shift_rules_sent_again_are_unchanged_and_other_rules_still_stale() -> (
    None
):
    world = World()
    await apply_shifts(ShiftsDocument(1, (DAY, NIGHT)), world.ports, config(), CALLER)

    # the stored v1 also retires the SHIFTS default (ALLDAY): the file sent again still matches
    again = await apply_shifts(ShiftsDocument(1, (DAY, NIGHT)), world.ports, config(), CALLER)

    assert again.outcome == "unchanged" and world.sink.writes == 1
    with pytest.raises(StaleVersion, match="version: 1 is not newer"):
        await apply_shifts(ShiftsDocument(1, (EARLY, LATE)), world.ports, config(), CALLER)


async def test_a_rollback_applies_an_earlier_version_again_as_a_new_one() -> None:
    world = World()
    await apply_metrics(goals(1, 60), world.ports, config(), CALLER)
    await apply_metrics(goals(2, 5), world.ports, config(), CALLER)  # the wrong goals file

    summary = await rollback_metrics("2026-11", 1, world.ports, config(), CALLER)

    assert (summary.action, summary.outcome, summary.version) == ("rollback_metrics", "applied", 3)
    assert summary.changes[0] == "v1 applied again as v3"
    assert "~ 2026-11:CALLS (DefaultGoal: 5.0 → 60.0, Version: 2 → 3)" in summary.changes
    assert calls_goal(world) == (60, 3)
    newest = world.versions.documents["dim_metric:2026-11"]
    assert (newest.version, newest.restored_from, newest.applied_by) == (3, 1, "test")
    assert MetricsDocument.from_json(newest.body) == goals(3, 60)
    assert [(r.action, r.outcome, r.version) for r in world.audit.records][-1] == (
        "rollback_metrics",
        "applied",
        3,
    )
    assert not world.leases.held and "dim:DimMetric:2026-11:CALLS" in world.ledger.done


async def test_a_dry_rollback_shows_the_diff_and_writes_nothing() -> None:
    world = World()
    await apply_metrics(goals(1, 60), world.ports, config(), CALLER)
    await apply_metrics(goals(2, 5), world.ports, config(), CALLER)
    writes = world.sink.writes

    summary = await rollback_metrics("2026-11", 1, world.ports, config(), CALLER, dry_run=True)

    assert (summary.outcome, summary.version) == ("dry_run", 3)
    assert "~ 2026-11:CALLS (DefaultGoal: 5.0 → 60.0, Version: 2 → 3)" in summary.changes
    assert world.sink.writes == writes and calls_goal(world) == (5, 2)
    assert world.versions.documents["dim_metric:2026-11"].version == 2
    assert world.audit.records[-1].outcome == "dry_run"


async def test_rolling_back_to_the_applied_content_is_unchanged() -> None:
    world = World()
    await apply_metrics(goals(1, 60), world.ports, config(), CALLER)
    await apply_metrics(goals(2, 5), world.ports, config(), CALLER)
    await rollback_metrics("2026-11", 1, world.ports, config(), CALLER)
    writes = world.sink.writes

    to_applied = await rollback_metrics("2026-11", 3, world.ports, config(), CALLER)
    to_same = await rollback_metrics("2026-11", 1, world.ports, config(), CALLER)

    assert (to_applied.outcome, to_applied.changes) == ("unchanged", ("v3 is the applied version",))
    assert (to_same.outcome, to_same.changes) == (
        "unchanged",
        ("v1 is the same as the applied version v3",),
    )
    assert world.sink.writes == writes
    assert [r.outcome for r in world.audit.records[-2:]] == ["unchanged", "unchanged"]


async def test_a_rollback_to_a_version_never_applied_names_the_versions_there_are() -> None:
    world = World()
    with pytest.raises(UnknownVersion, match="dim_shift has no version 1: nothing was applied yet"):
        await rollback_shifts(1, world.ports, config(), CALLER)
    await apply_shifts(ShiftsDocument(1, (DAY, NIGHT)), world.ports, config(), CALLER)
    await apply_shifts(ShiftsDocument(3, (EARLY, LATE)), world.ports, config(), CALLER)

    with pytest.raises(UnknownVersion, match="dim_shift has no version 2: its versions are v1, v3"):
        await rollback_shifts(2, world.ports, config(), CALLER)
    with pytest.raises(ValidationFailed, match="month: '2026-13' is not a month"):
        await rollback_metrics("2026-13", 1, world.ports, config(), CALLER)


async def test_a_shift_rollback_restores_the_earlier_rules_and_shows_in_history() -> None:
    world = World()
    await apply_shifts(ShiftsDocument(1, (DAY, NIGHT)), world.ports, config(), CALLER)
    await apply_shifts(ShiftsDocument(2, (EARLY, LATE)), world.ports, config(), CALLER)

    summary = await rollback_shifts(1, world.ports, config(), CALLER)

    assert (summary.action, summary.version) == ("rollback_shifts", 3)
    table = world.sink.tables["DimShift"]
    live = sorted(key for key, row in table.items() if not row.Retired)
    assert live == ["DAY", "NIGHT", "UNASSIGNED"]
    # the keys facts may carry from v2 (and the SHIFTS default before v1) stay, retired
    assert sorted(key for key, row in table.items() if row.Retired) == ["ALLDAY", "EARLY", "LATE"]
    entries = await history("dim_shift", world.ports)
    assert [(e.version, e.restored_from) for e in entries] == [(1, None), (2, None), (3, 1)]
    assert "restores v1" in entries[-1].line()


async def test_a_rollback_waits_its_turn_behind_the_dimension_lease() -> None:
    world = World()
    await apply_shifts(ShiftsDocument(1, (DAY, NIGHT)), world.ports, config(), CALLER)
    await apply_shifts(ShiftsDocument(2, (EARLY, LATE)), world.ports, config(), CALLER)
    world.leases.held["control:DimShift"] = "another-replica"

    with pytest.raises(Busy):
        await rollback_shifts(1, world.ports, config(), CALLER)
    assert world.versions.documents["dim_shift"].version == 2

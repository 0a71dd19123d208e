"""PowerBISink against the emulator: facts, repeats, dimensions, replace, ping, sizes, close."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from pulse.adapters_out.powerbi.errors import PowerBIAccessDenied, PowerBIAuthError
from pulse.adapters_out.sqlite.control import SqliteRowCounts, open_control_db
from pulse.core.calendar import dim_date
from pulse.core.errors import SinkPermanentError, SinkTransientError
from pulse.core.model import DimAgent, DimRow, DimShift
from pulse.ports.control import RowCounts
from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.fakes import FakeClock
from tests.support.powerbi.fixtures import fact, facts
from tests.support.powerbi.harness import FakeRowCounts, powerbi_sink

SYNCED = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)


def agent(key: str, name: str = "") -> DimAgent:
    return DimAgent(key, name or f"Agent {key}", f"{key}@example.test", "8465", True, SYNCED)


async def test_appended_facts_land_in_fact_event(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await sink.append(facts(0, 3))

    rows = fast_emulator.rows("FactEvent")
    assert [r["EventKey"] for r in rows] == ["aloware:0", "aloware:1", "aloware:2"]
    assert rows[0]["OccurredAtUtc"] == "2025-11-05T17:00:00.000Z"
    assert fast_emulator.calls["my_workspace"] == 0


async def test_repeated_facts_never_change_the_distinct_count(
    fast_emulator: PowerBIEmulator,
) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await sink.append(facts(0, 10))
        await sink.append(facts(5, 10))  # a replay after a crash before the ledger commit

    keys = fast_emulator.key_counts("FactEvent", "EventKey")
    duplicates = sum(keys.values()) - len(keys)
    print(f"raw rows {sum(keys.values())}, distinct {len(keys)}, duplicates {duplicates}")
    assert len(keys) == 15
    assert duplicates == 5


async def test_dimension_rows_go_to_their_tables(fast_emulator: PowerBIEmulator) -> None:
    shift = DimShift("ALLDAY", "All day", "00:00", "00:00", "Mon,Tue,Wed,Thu,Fri,Sat,Sun")
    async with powerbi_sink(fast_emulator) as sink:
        await sink.upsert([agent("2"), dim_date(date(2025, 11, 5)), shift, agent("3")])

    assert [r["AgentKey"] for r in fast_emulator.rows("DimAgent")] == ["2", "3"]
    assert [r["DateKey"] for r in fast_emulator.rows("DimDate")] == [20251105]
    assert [r["ShiftKey"] for r in fast_emulator.rows("DimShift")] == ["ALLDAY"]


async def test_replace_deletes_then_posts_and_outlives_earlier_upserts(
    fast_emulator: PowerBIEmulator,
) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await sink.upsert([agent("1", "Gone")])
        pending = asyncio.ensure_future(sink.upsert([agent("9", "Queued before")]))
        await asyncio.sleep(0)

        await sink.replace("DimAgent", [agent("2", "John"), agent("4", "New")])
        await pending

    assert sorted(r["AgentKey"] for r in fast_emulator.rows("DimAgent")) == ["2", "4"]
    assert fast_emulator.calls["DeleteRowsInGroup"] == 1


async def test_replace_with_more_rows_than_one_request(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await sink.replace("DimAgent", [agent(str(n)) for n in range(12_500)])

    assert len(fast_emulator.rows("DimAgent")) == 12_500
    assert max(fast_emulator.counters.received_sizes) == 10_000


async def test_replace_refuses_rows_of_another_table(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        with pytest.raises(SinkPermanentError):
            await sink.replace("DimAgent", [dim_date(date(2025, 11, 5))])
        with pytest.raises(SinkPermanentError):
            await sink.replace("Nope", [])


async def test_a_fact_power_bi_would_refuse_fails_before_any_request(
    fast_emulator: PowerBIEmulator,
) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        with pytest.raises(SinkPermanentError, match="4001 characters"):
            await sink.append([replace(fact(0), AgentKey="x" * 4_001)])

    assert fast_emulator.counters.received_sizes == []


async def test_ping_checks_token_workspace_and_dataset(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        await sink.ping()
        fast_emulator.faults.deny = "not_member"
        with pytest.raises(PowerBIAccessDenied, match="Member"):
            await sink.ping()


async def test_ping_names_a_missing_dataset(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator, ensure=False) as sink:
        with pytest.raises(PowerBIAccessDenied, match="pulse dataset ensure"):
            await sink.ping()


async def test_ping_reports_a_refused_secret(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(
        fast_emulator, ensure=False, client_secret=SecretStr("rotated")
    ) as sink:
        with pytest.raises(PowerBIAuthError, match="invalid_client"):
            await sink.ping()


async def test_a_configured_dataset_id_is_used_as_is(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator):
        pass
    dataset = fast_emulator.dataset(name="Pulse")
    listed = fast_emulator.calls["GetDatasetsInGroup"]

    async with powerbi_sink(fast_emulator, ensure=False, dataset_id=dataset.id) as sink:
        await sink.append(facts(0, 1))

    assert fast_emulator.calls["GetDatasetsInGroup"] == listed  # no lookup by name
    assert len(fast_emulator.rows("FactEvent")) == 1


@pytest.mark.parametrize("kept_in", ["memory", "sqlite"])
async def test_table_sizes_are_seeded_from_the_row_count_store_and_kept_there(
    fast_emulator: PowerBIEmulator, kept_in: str, tmp_path: Path
) -> None:
    db = open_control_db(tmp_path / "control.sqlite")
    counts: RowCounts = FakeRowCounts() if kept_in == "memory" else SqliteRowCounts(db, FakeClock())
    await counts.set("FactEvent", 300_000)

    try:
        async with powerbi_sink(fast_emulator, row_counts=counts) as sink:
            await sink.append(facts(0, 1))
            assert sink.limiter.large
            assert sink.stats()["table_rows"]["FactEvent"] == 300_001
        assert await counts.get_all() == {"FactEvent": 300_001}
    finally:
        await db.close()


async def test_close_waits_for_rows_already_handed_over(fast_emulator: PowerBIEmulator) -> None:
    async with powerbi_sink(fast_emulator) as sink:
        appends = [asyncio.ensure_future(sink.append(facts(n * 10, 10))) for n in range(20)]
        await asyncio.sleep(0)

    assert all(a.done() and a.exception() is None for a in appends)
    assert len(fast_emulator.rows("FactEvent")) == 200


async def test_a_dimension_upsert_retried_after_a_partial_landing_posts_each_row_once() -> None:
    """Past 250k rows one PostRows goes every 30 s, one table per request: an upsert spanning
    two tables can see its first table land and its second outwait POWERBI__APPEND_TIMEOUT_SEC.
    The caller gets a transient error and (the ledger claim released) upserts again; the row
    that already landed must not go twice (a duplicate key on the one side of a relationship)."""
    # 20x: the 10 emulated seconds either side of each deadline are half a real second
    async with PowerBIEmulator(timebase=ScaledTime(20)) as emulator:
        async with powerbi_sink(
            emulator, row_counts=FakeRowCounts({"FactEvent": 250_000}), append_timeout_sec=20
        ) as sink:
            emulator.seed_rows("FactEvent", 250_000)
            rows: list[DimRow] = [agent("2"), dim_date(date(2025, 11, 5))]
            failures = 0
            for _ in range(4):  # each failure is redelivered, as core's ingest or extend_dates is
                try:
                    await sink.upsert(rows)
                    break
                except SinkTransientError:
                    failures += 1

    print(f"failed attempts {failures}, PostRows {emulator.counters.received_sizes}")
    assert failures == 1  # the first attempt; the redelivery sends only what is missing
    assert [r["AgentKey"] for r in emulator.rows("DimAgent")] == ["2"]
    assert [r["DateKey"] for r in emulator.rows("DimDate")] == [20251105]


async def test_an_upsert_during_a_replace_of_its_table_adds_no_second_copy(
    fast_emulator: PowerBIEmulator,
) -> None:
    """The roster sync replaces DimAgent while ingest upserts the agent of an event: the
    replace's rows land first and the upsert adds only keys they do not hold."""
    async with powerbi_sink(fast_emulator) as sink:
        await sink.ping()
        replacing = asyncio.ensure_future(sink.replace("DimAgent", [agent("42"), agent("7")]))
        for _ in range(1_000):  # until its DeleteRows is done and its PostRows queued
            if fast_emulator.calls["DeleteRowsInGroup"]:
                break
            await asyncio.sleep(0.001)
        assert not replacing.done()
        await sink.upsert([agent("42"), agent("8")])
        await replacing

    assert sorted(r["AgentKey"] for r in fast_emulator.rows("DimAgent")) == ["42", "7", "8"]

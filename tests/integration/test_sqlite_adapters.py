"""SQLite specifics the port contracts cannot see: group commit, durability, the report view."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from pulse.adapters_out.sqlite.ledger import SqliteLedger
from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
from pulse.core.calendar import dim_date
from pulse.core.errors import SinkPermanentError
from pulse.core.model import (
    DateKey,
    Delivery,
    DimAgent,
    DimMetric,
    EventKey,
    FactEvent,
    IngestEnvelope,
    MetricID,
)
from tests.fakes import FakeClock

VISIBILITY = timedelta(seconds=30)
LEASE = timedelta(seconds=120)


def envelope(request_id: str, received_at: datetime | None = None) -> IngestEnvelope:
    return IngestEnvelope(
        request_id=request_id,
        source="hubspot",
        received_at=received_at or datetime(2025, 11, 5, 17, 0, tzinfo=UTC),
        body=b'[{"eventId": 1}]',
        headers={"x-hubspot-signature-v3": "sig"},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- inbox ------------------------------------------------------------------------------------


async def test_concurrent_puts_share_commits(tmp_path: Path, clock: FakeClock) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, VISIBILITY)
    before = inbox.db.commits

    await asyncio.gather(*(inbox.put(envelope(f"r-{i}")) for i in range(50)))

    commits = inbox.db.commits - before
    assert 1 <= commits < 10, f"50 puts took {commits} transactions"
    assert (await inbox.stats()).depth == 50
    await inbox.close()


async def test_a_returned_put_is_visible_to_another_connection(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "inbox.sqlite"
    inbox = SqliteInbox(path, clock, VISIBILITY)

    await inbox.put(envelope("r-1"))

    with sqlite3.connect(path) as other:
        assert other.execute("SELECT request_id FROM inbox").fetchall() == [("r-1",)]
    await inbox.close()


async def test_the_inbox_is_durable_wal_and_creates_its_folder(
    tmp_path: Path, clock: FakeClock
) -> None:
    inbox = SqliteInbox(tmp_path / "data" / "nested" / "inbox.sqlite", clock, VISIBILITY)

    journal, synchronous = await inbox.db.run(
        lambda c: (
            c.execute("PRAGMA journal_mode").fetchone()[0],
            c.execute("PRAGMA synchronous").fetchone()[0],
        )
    )

    assert (journal, synchronous) == ("wal", 2)  # 2 = FULL
    await inbox.close()


async def test_envelopes_and_dead_letters_survive_a_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "inbox.sqlite"
    inbox = SqliteInbox(path, clock, VISIBILITY)
    await inbox.put(envelope("r-1"))
    await inbox.put(envelope("r-2"))
    (taken,) = await inbox.take(1, wait=0)
    await SqliteDeadLetters(inbox).add(taken, "unparseable")
    await inbox.ack([taken.receipt])
    await inbox.close()

    reopened = SqliteInbox(path, clock, VISIBILITY)
    (delivery,) = await reopened.take(10, wait=0)
    letters = await SqliteDeadLetters(reopened).list()

    assert delivery.envelope == envelope("r-2")
    assert [x.envelope.request_id for x in letters] == ["r-1"]
    await reopened.close()


async def test_naive_received_at_round_trips_naive(tmp_path: Path, clock: FakeClock) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, VISIBILITY)
    naive = datetime(2025, 11, 5, 12, 0)
    await inbox.put(envelope("r-1", received_at=naive))

    (delivery,) = await inbox.take(1, wait=0)

    assert delivery.envelope.received_at == naive
    await inbox.close()


async def test_aware_received_at_comes_back_in_utc(tmp_path: Path, clock: FakeClock) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, VISIBILITY)
    eastern = datetime(2025, 11, 5, 7, 0, tzinfo=ZoneInfo("America/New_York"))
    await inbox.put(envelope("r-1", received_at=eastern))

    (delivery,) = await inbox.take(1, wait=0)

    assert delivery.envelope.received_at == eastern
    assert delivery.envelope.received_at.tzinfo == UTC
    await inbox.close()


async def test_a_waiting_take_sees_a_put_from_another_process(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "inbox.sqlite"
    worker_side = SqliteInbox(path, clock, VISIBILITY)
    cli_side = SqliteInbox(
        path, clock, VISIBILITY
    )  # its own connection, like `pulse dead-letters replay`
    taker = asyncio.create_task(worker_side.take(10, wait=3))
    await asyncio.sleep(0.05)

    await cli_side.put(envelope("r-1"))
    deliveries = await asyncio.wait_for(taker, timeout=1)

    assert [d.envelope.request_id for d in deliveries] == ["r-1"]
    await cli_side.close()
    await worker_side.close()


async def test_close_lets_every_accepted_put_commit_first(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "inbox.sqlite"
    inbox = SqliteInbox(path, clock, VISIBILITY)
    puts = [asyncio.create_task(inbox.put(envelope(f"r-{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # every put is accepted and waiting for its commit

    await inbox.close()

    await asyncio.gather(*puts)
    reopened = SqliteInbox(path, clock, VISIBILITY)
    assert (await reopened.stats()).depth == 20
    await reopened.close()


async def test_a_put_after_close_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, VISIBILITY)
    await inbox.close()
    await inbox.close()

    with pytest.raises(RuntimeError, match="closed"):
        await inbox.put(envelope("r-1"))


async def test_a_dead_letter_added_again_keeps_the_latest_reason(
    tmp_path: Path, clock: FakeClock
) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, VISIBILITY)
    letters = SqliteDeadLetters(inbox)
    await letters.add(Delivery(envelope("r-1"), "1:x", 1), "first")
    clock.advance(60)

    await letters.add(Delivery(envelope("r-1"), "1:y", 3), "second")

    (letter,) = await letters.list()
    assert (letter.reason, letter.attempts, letter.dead_at) == ("second", 3, clock.now())
    await inbox.close()


# --- ledger -----------------------------------------------------------------------------------


async def test_committed_keys_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = SqliteLedger(path, clock)
    await ledger.commit(await ledger.claim(["aloware:1"], LEASE))
    await ledger.close()

    reopened = SqliteLedger(path, clock)

    assert (await reopened.claim(["aloware:1"], LEASE)).done == ("aloware:1",)
    await reopened.close()


async def test_commit_stores_done_with_expiry_in_epoch_seconds(
    tmp_path: Path, clock: FakeClock
) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite", clock, ttl=timedelta(days=3))
    claim = await ledger.claim(["aloware:1"], LEASE)

    await ledger.commit(claim)

    row = await ledger.db.run(
        lambda c: c.execute("SELECT state, claim_token, expires_at FROM ledger").fetchone()
    )
    assert row == ("DONE", claim.token, int((clock.now() + timedelta(days=3)).timestamp()))
    await ledger.close()


async def test_one_claim_of_many_keys_is_one_transaction(tmp_path: Path, clock: FakeClock) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite", clock)
    before = ledger.db.commits

    claim = await ledger.claim([f"aloware:{i}" for i in range(1200)], LEASE)

    assert len(claim.claimed) == 1200
    assert ledger.db.commits - before == 1
    await ledger.close()


# --- warehouse --------------------------------------------------------------------------------

WEDNESDAY, SATURDAY = date(2025, 11, 5), date(2025, 11, 8)
SYNCED = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)


def fact(n: int, agent: str, metric: MetricID, day: date = WEDNESDAY) -> FactEvent:
    occurred = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
    return FactEvent(
        EventKey=EventKey(f"{metric.value.lower()}:{n}"),
        Source="aloware",
        MetricID=metric,
        AgentKey=agent,
        DateKey=DateKey(day.year * 10000 + day.month * 100 + day.day),
        ShiftKey="ALLDAY",
        OccurredAtUtc=occurred,
        OccurredAtLocal=occurred.replace(tzinfo=None),
        MetricMonthKey=f"{day:%Y-%m}:{metric.value}",
    )


def agent(key: str, name: str, active: bool = True) -> DimAgent:
    return DimAgent(key, name, None, "8465", active, SYNCED)


def goal(metric: MetricID, default: float, floor: float, month: str = "2025-11") -> DimMetric:
    return DimMetric(f"{month}:{metric.value}", metric, month, default, floor, 1)


@pytest.fixture
async def warehouse(tmp_path: Path) -> AsyncIterator[SqliteWarehouse]:
    store = SqliteWarehouse(tmp_path / "warehouse.sqlite")
    await store.upsert(
        [
            dim_date(WEDNESDAY),
            dim_date(SATURDAY),
            goal(MetricID.CALLS, 10, 0.8),
            goal(MetricID.TEXTS, 5, 0.5),
            goal(MetricID.CALLS, 99, 0.9, month="2025-12"),
            agent("2", "John"),
            agent("3", "Jane"),
            agent("8", "Idle", active=False),
            agent("9", "Left", active=False),
        ]
    )
    yield store
    await store.close()


def table(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (r["AgentName"], r["MetricID"], r["Count"], r["Goal"], r["Attainment"], r["Status"])
        for r in rows
    ]


async def test_the_daily_view_grades_green_yellow_and_red(warehouse: SqliteWarehouse) -> None:
    await warehouse.append(
        [fact(i, "2", MetricID.CALLS) for i in range(10)]  # 10/10 → Green
        + [fact(100 + i, "2", MetricID.TEXTS) for i in range(2)]  # 2/5 = 0.4 < 0.5 → Red
        + [fact(200 + i, "3", MetricID.CALLS) for i in range(8)]  # 8/10 = 0.8 → Yellow
        + [fact(300, "9", MetricID.CALLS)]  # left (no period known), but worked: shown
    )

    rows = await warehouse.daily_metrics(20251105)

    assert table(rows) == [
        ("Jane", "CALLS", 8, 10.0, 0.8, "Yellow"),
        ("Jane", "TEXTS", 0, 5.0, 0.0, "Red"),
        ("John", "CALLS", 10, 10.0, 1.0, "Green"),
        ("John", "TEXTS", 2, 5.0, 0.4, "Red"),
        ("Left", "CALLS", 1, 0.0, None, None),  # not on the roster: no goal
    ]
    assert rows[0]["Date"] == "2025-11-05"
    assert rows[0]["YellowFloorPct"] == 0.8


async def test_an_agent_has_a_goal_on_the_days_of_their_period_on_the_roster(
    warehouse: SqliteWarehouse,
) -> None:
    tuesday, thursday = WEDNESDAY - timedelta(days=1), WEDNESDAY + timedelta(days=1)
    await warehouse.upsert(
        [
            dim_date(tuesday),
            dim_date(thursday),
            dataclasses.replace(agent("9", "Left", active=False), ActiveTo=WEDNESDAY),
            dataclasses.replace(agent("3", "Jane"), ActiveFrom=WEDNESDAY),
        ]
    )

    def calls_goals(rows: list[dict[str, object]]) -> dict[object, object]:
        return {r["AgentName"]: r["Goal"] for r in rows if r["MetricID"] == "CALLS"}

    tue, wed, thu = [
        await warehouse.daily_metrics(int(f"{d:%Y%m%d}")) for d in (tuesday, WEDNESDAY, thursday)
    ]
    assert calls_goals(tue) == {"John": 10.0, "Left": 10.0}  # Jane joined on Wednesday
    assert calls_goals(wed) == {"Jane": 10.0, "John": 10.0, "Left": 10.0}  # Left's last day
    assert calls_goals(thu) == {"Jane": 10.0, "John": 10.0}


async def test_a_weekend_has_no_goal_and_no_status(warehouse: SqliteWarehouse) -> None:
    await warehouse.append([fact(1, "2", MetricID.CALLS, day=SATURDAY)])

    rows = await warehouse.daily_metrics(20251108, agent="2")

    assert table(rows) == [
        ("John", "CALLS", 1, 0.0, None, None),
        ("John", "TEXTS", 0, 0.0, None, None),
    ]


async def test_a_repeated_event_counts_once_in_the_view(warehouse: SqliteWarehouse) -> None:
    await warehouse.append([fact(1, "2", MetricID.CALLS)])
    await warehouse.append([fact(1, "2", MetricID.CALLS), fact(1, "2", MetricID.CALLS)])

    (calls,) = [r for r in await warehouse.daily_metrics(20251105, "2") if r["MetricID"] == "CALLS"]

    assert calls["Count"] == 1
    assert await warehouse.count("FactEvent") == 1


async def test_a_zero_goal_on_a_workday_has_no_status(warehouse: SqliteWarehouse) -> None:
    await warehouse.upsert([goal(MetricID.TEXTS, 0, 0.5)])

    rows = await warehouse.daily_metrics(20251105, "3")

    assert table(rows)[1] == ("Jane", "TEXTS", 0, 0.0, None, None)


async def test_upsert_replaces_a_dimension_row_by_key(warehouse: SqliteWarehouse) -> None:
    await warehouse.upsert([agent("2", "John Renamed", active=False)])

    john = [r for r in await warehouse.rows("DimAgent") if r["AgentKey"] == "2"]

    assert [(r["AgentName"], r["Active"]) for r in john] == [("John Renamed", 0)]


async def test_values_are_stored_as_the_schema_says(warehouse: SqliteWarehouse) -> None:
    await warehouse.append([fact(1, "2", MetricID.CALLS)])

    (row,) = await warehouse.rows("FactEvent")
    (day,) = [d for d in await warehouse.rows("DimDate") if d["DateKey"] == 20251105]

    assert row["OccurredAtUtc"] == "2025-11-05T15:00:00+00:00"
    assert row["OccurredAtLocal"] == "2025-11-05T15:00:00"
    assert row["DurationSec"] is None
    assert (day["IsWorkday"], day["IsWeekend"], day["Date"]) == (1, 0, "2025-11-05")


async def test_unknown_tables_and_wrong_rows_are_refused(warehouse: SqliteWarehouse) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        await warehouse.replace("DimNope", [])
    with pytest.raises(ValueError, match="unknown table"):
        await warehouse.count("DimNope")
    with pytest.raises(ValueError, match="unknown table"):
        await warehouse.rows("sqlite_master")
    with pytest.raises(ValueError, match="DimAgent"):
        await warehouse.replace("DimAgent", [dim_date(WEDNESDAY)])


async def test_the_star_schema_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.sqlite"
    first = SqliteWarehouse(path)
    await first.append([fact(1, "2", MetricID.CALLS)])
    await first.close()

    reopened = SqliteWarehouse(path)

    assert await reopened.count("FactEvent") == 1
    await reopened.close()


async def test_a_column_missing_from_an_older_file_is_added(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE FactEvent (EventKey TEXT PRIMARY KEY, Source TEXT)")
        old.execute("INSERT INTO FactEvent VALUES ('aloware:0', 'aloware')")
    old.close()

    warehouse = SqliteWarehouse(path)
    await warehouse.append([fact(1, "2", MetricID.CALLS)])

    assert await warehouse.count("FactEvent") == 2
    await warehouse.close()


async def test_a_fact_the_schema_rejects_is_a_permanent_sink_error(
    warehouse: SqliteWarehouse,
) -> None:
    broken = dataclasses.replace(fact(1, "2", MetricID.CALLS), AgentKey=None)  # type: ignore[arg-type]

    with pytest.raises(SinkPermanentError, match="NOT NULL"):
        await warehouse.append([broken])
    assert await warehouse.count("FactEvent") == 0


async def test_replace_with_a_key_given_twice_keeps_the_last(warehouse: SqliteWarehouse) -> None:
    await warehouse.replace("DimAgent", [agent("2", "First"), agent("2", "Last")])

    assert [r["AgentName"] for r in await warehouse.rows("DimAgent")] == ["Last"]


async def test_an_idle_take_writes_nothing(tmp_path: Path, clock: FakeClock) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock, VISIBILITY)
    before = inbox.db.commits

    assert await inbox.take(10, wait=0.25) == []

    assert inbox.db.commits == before
    await inbox.close()

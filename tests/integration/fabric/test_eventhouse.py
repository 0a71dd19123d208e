"""The Eventhouse sink against the Kusto emulator: set-up, streaming ingestion inside the
limits, and the faults of DESIGN §4 as Kusto shows them."""

from __future__ import annotations

import pytest

from pulse.adapters_out.fabric import kql
from pulse.adapters_out.fabric.errors import FabricAccessDenied, FabricRejected
from pulse.core.errors import SinkPermanentError, SinkTransientError
from pulse.core.schema import TABLES
from tests.contract.test_sink_contract import agent, call
from tests.emulators.kusto import KustoEmulator
from tests.support.fabric.harness import ensure, eventhouse_sink


async def test_ensure_creates_tables_mappings_streaming_policy_and_functions() -> None:
    async with KustoEmulator() as kusto:
        report = await ensure(kusto)

        assert set(kusto.tables) == {t.name for t in TABLES}
        for table in TABLES:
            stored = kusto.tables[table.name]
            assert list(stored.columns) == list(table.column_names)
            assert stored.streaming
            assert [m["column"] for m in stored.mappings["pulse_json"]] == list(table.column_names)
        assert set(kusto.functions) == {f.name for f in kql.FUNCTIONS}
        assert "PulseDailyMetric" in kusto.functions
        assert f"KQL database '{kusto.database}' ensured" in report


async def test_ensure_twice_changes_nothing_and_show_then_says_the_schema_matches() -> None:
    async with KustoEmulator() as kusto:
        await ensure(kusto)
        tables_before = {n: dict(t.columns) for n, t in kusto.tables.items()}

        await ensure(kusto)
        shown = await ensure(kusto, show=True)

        assert {n: dict(t.columns) for n, t in kusto.tables.items()} == tables_before
        assert "schema matches the code" in shown


async def test_show_on_an_empty_database_lists_what_ensure_would_do_and_writes_nothing() -> None:
    async with KustoEmulator() as kusto:
        shown = await ensure(kusto, show=True)

        assert "would apply: create table FactEvent" in shown
        assert "would apply: create function PulseDailyMetric" in shown
        assert kusto.tables == {} and kusto.functions == {}


async def test_a_column_of_another_type_is_reported_as_drift_not_forced() -> None:
    async with KustoEmulator() as kusto:
        kusto._run(".create-merge table DimShift (ShiftKey:string, Days:long)")

        report = await ensure(kusto)

        assert "drift: DimShift[Days] is long in Kusto, the code says string" in report
        assert kusto.tables["DimShift"].columns["Days"] == "long"  # left as it was
        assert "DimAgent" in kusto.tables  # the other tables were still set up


async def test_appending_before_ensure_waits_with_a_sentence_saying_what_to_run() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto, ensured=False) as sink:
        with pytest.raises(FabricAccessDenied, match="pulse dataset ensure") as caught:
            await sink.append([call(1)])

        assert isinstance(caught.value, SinkTransientError)  # redelivered later, not dead-lettered
        assert kusto.rows("FactEvent") == []


async def test_every_request_carries_its_own_client_request_id() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        await sink.append([call(1), call(2)])
        await sink.replace("DimAgent", [agent("42", "John")])

        ids = kusto.counters.client_request_ids
        assert len(ids) >= 3 and all(i.startswith("Pulse.") for i in ids)
        assert len(set(ids)) == len(ids)


async def test_a_large_append_is_gzipped_and_split_below_the_request_limit() -> None:
    async with (
        KustoEmulator() as kusto,
        eventhouse_sink(kusto, max_request_bytes=1_000_000) as sink,
    ):
        await sink.append([call(n) for n in range(12_000)])

        sizes = kusto.counters.request_sizes
        assert len(sizes) >= 3 and max(sizes) <= 1_000_000
        assert kusto.counters.gzipped == len(sizes)
        assert kusto.key_counts("FactEvent", "EventKey") == {
            f"aloware:{n}": 1 for n in range(12_000)
        }


async def test_a_413_splits_the_request_instead_of_failing_it() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        kusto.faults.max_request_bytes = 60_000  # the service's limit is lower than ours

        await sink.append([call(n) for n in range(2_000)])

        assert kusto.counters.too_large >= 1
        assert sink.sender.stats.splits >= 1
        assert len(set(kusto.key_counts("FactEvent", "EventKey"))) == 2_000


async def test_throttling_and_5xx_are_waited_out() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        kusto.faults.storm_429, kusto.faults.retry_after = 3, 0
        kusto.faults.errors_5xx = 2

        await sink.append([call(1), call(2)])

        assert kusto.counters.throttled == 3 and kusto.counters.injected_5xx == 2
        assert sink.sender.stats.throttled == 3 and sink.sender.stats.unavailable == 2
        assert kusto.key_counts("FactEvent", "EventKey") == {"aloware:1": 1, "aloware:2": 1}


async def test_a_connection_dropped_after_the_rows_landed_repeats_them_harmlessly() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        kusto.faults.drop_after = 1

        await sink.append([call(1), call(2)])

        counts = kusto.key_counts("FactEvent", "EventKey")
        assert set(counts) == {"aloware:1", "aloware:2"}  # what PulseFacts() counts
        assert sum(counts.values()) == 4  # the raw repeat the read side deduplicates
        assert "arg_min(_ingested, *) by EventKey" in kql.FACTS.body


async def test_an_expired_token_is_fetched_anew_once() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        await sink.append([call(1)])
        issued = kusto.aad.issued
        kusto.aad.expire_all()

        await sink.append([call(2)])

        assert kusto.counters.token_expired == 1
        assert kusto.aad.issued == issued + 1
        assert set(kusto.key_counts("FactEvent", "EventKey")) == {"aloware:1", "aloware:2"}


async def test_rows_kusto_refuses_fail_for_good_with_kustos_message() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        kusto.tables["FactEvent"].columns["DurationSec"] = "bool"  # someone altered the table

        with pytest.raises(FabricRejected, match=r"FactEvent\[DurationSec\]") as caught:
            await sink.append([call(7)])

        assert isinstance(caught.value, SinkPermanentError)  # dead-lettered, not retried
        assert caught.value.status == 400


async def test_a_dimension_replace_is_one_set_or_replace_command() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto) as sink:
        await sink.upsert([agent("1", "Gone"), agent("42", "John")])
        before = len(kusto.counters.commands)

        await sink.replace("DimAgent", [agent("42", 'John "JJ" Smith'), agent("7", "Ann\nLee")])

        commands = kusto.counters.commands[before:]
        assert len(commands) == 1 and commands[0].startswith(".set-or-replace DimAgent <|")
        names = sorted(r["AgentName"] for r in kusto.rows("DimAgent"))
        assert names == ["Ann\nLee", 'John "JJ" Smith']


async def test_a_replace_too_large_for_one_command_clears_then_ingests() -> None:
    async with KustoEmulator() as kusto, eventhouse_sink(kusto, inline_replace_max_bytes=0) as sink:
        await sink.upsert([agent("1", "Gone")])
        before = len(kusto.counters.commands)

        await sink.replace("DimAgent", [agent(str(n), f"Agent {n}") for n in range(50)])

        assert kusto.counters.commands[before:] == [".clear table DimAgent data"]
        assert len(kusto.rows("DimAgent")) == 50


def test_the_kql_functions_are_the_twins_of_the_dax_measures() -> None:
    by_name = {f.name: f for f in kql.FUNCTIONS}

    assert (
        "summarize Activities = count() by DateKey, AgentKey, MetricID"
        in by_name["PulseActivities"].body
    )
    assert by_name["PulseActivities"].body.startswith("PulseFacts()")  # distinct EventKeys
    assert 'where MetricID == "CALLS"' in by_name["PulseCalls"].body
    daily = by_name["PulseDailyMetric"].body
    assert 'Attainment >= 1.0, "Green", Attainment >= YellowFloorPct, "Yellow", "Red"' in daily
    assert "Goal = iff(IsWorkday and OnRoster, coalesce(OwnGoal, DefaultGoal), 0.0)" in daily
    assert 'OwnKey = strcat(MetricMonthKey, ":", AgentKey)' in daily  # an agent's own goal
    # on the roster that day (ActiveFrom … ActiveTo), not Active now: past days stay put
    assert "isnull(ActiveFrom) or ActiveFrom <= Date" in daily
    assert "iff(isnull(ActiveTo), Active, Date <= ActiveTo)" in daily
    assert {f.measure for f in kql.FUNCTIONS} >= {
        "[Activities] = DISTINCTCOUNT(FactEvent[EventKey])",
        "[Goal], [Attainment %], [Status] (FactDailyMetric)",
    }

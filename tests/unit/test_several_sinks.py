"""SINKS=a,b against in-memory ports: every counted event goes to each sink once, each sink in its
own ledger namespace, and one sink's failure (transient, permanent, or its breaker open) neither
blocks nor double-counts the other (DESIGN §9 "Several sinks")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pulse.adapters_out.ledger_namespace import NamespacedLedger
from pulse.core import control
from pulse.core.ingest import BatchOutcome, process_batch
from pulse.core.lanes import SinkLane
from pulse.core.model import Delivery, RosterSnapshot
from tests.fakes import CALLER, FakeSink, World, config
from tests.unit.test_core_ingest import ADA, CALL_KEY, aloware, status_of
from tests.unit.test_core_ingest import World as IngestWorld
from tests.unit.test_core_ingest import world as world


class TwoSinks:
    """`powerbi` keeps the plain keys (it was SINK before), `fabric` counts under `fabric/`."""

    def __init__(self, world: IngestWorld) -> None:
        self.world = world
        self.store = world.ledger
        self.powerbi, self.fabric = world.sink, FakeSink()
        self.lanes = (
            SinkLane("powerbi", self.store, self.powerbi, "sink:powerbi"),
            SinkLane("fabric", NamespacedLedger(self.store, "fabric/"), self.fabric, "sink:fabric"),
        )

    async def run(self, *deliveries: Delivery, skip: frozenset[str] = frozenset()) -> BatchOutcome:
        ports = replace(self.world.ports, lanes=self.lanes)
        return await process_batch(
            list(deliveries),
            ports,
            self.world.config,
            self.world.clock.now(),
            hold_outages=True,
            skip=skip,
        )

    def fact_keys(self) -> tuple[list[str], list[str]]:
        return (
            sorted(f.EventKey for f in self.powerbi.facts()),
            sorted(f.EventKey for f in self.fabric.facts()),
        )


@pytest.fixture
def sinks(world: IngestWorld) -> TwoSinks:
    return TwoSinks(world)


async def test_each_sink_counts_a_redelivered_call_once_in_its_own_namespace(
    sinks: TwoSinks,
) -> None:
    first, again = aloware(), aloware()

    counted = await sinks.run(first)
    repeated = await sinks.run(again)

    assert sinks.fact_keys() == ([CALL_KEY], [CALL_KEY])
    assert {CALL_KEY, f"fabric/{CALL_KEY}"} <= set(sinks.store.done)
    assert sinks.powerbi.writes == sinks.fabric.writes  # the redelivery pushed nowhere
    assert [(e.sink, e.status.value) for e in counted.envelopes[0].events] == [
        ("powerbi", "accepted"),
        ("fabric", "accepted"),
    ]
    assert {e.status.value for e in repeated.envelopes[0].events} == {"duplicate"}
    assert sinks.world.acked(first) and sinks.world.acked(again)


async def test_a_sink_that_is_down_holds_the_call_while_the_other_counts_it(
    sinks: TwoSinks,
) -> None:
    call = aloware()
    sinks.fabric.fail_next("transient")

    down = await sinks.run(call)
    back = await sinks.run(call)  # the held delivery, run again once its breaker half-opens

    assert down.held == (call,) and set(down.outages) == {"sink:fabric"}
    assert status_of(back, call).value == "accepted" and sinks.world.acked(call)
    assert sinks.fact_keys() == ([CALL_KEY], [CALL_KEY])
    by_sink = {e.sink: e.code for e in back.envelopes[0].events}
    assert by_sink == {"powerbi": "already_counted", "fabric": "counted"}


async def test_a_sink_behind_an_open_breaker_is_not_tried_and_not_failed_again(
    sinks: TwoSinks,
) -> None:
    call = aloware()

    outcome = await sinks.run(call, skip=frozenset({"sink:fabric"}))

    assert outcome.held == (call,) and outcome.outages == {}  # held, its breaker not re-failed
    assert sinks.fabric.writes == 0 and sinks.fact_keys() == ([CALL_KEY], [])
    assert not sinks.world.acked(call)


async def test_a_sink_that_rejects_dead_letters_with_its_name_and_the_other_keeps_the_count(
    sinks: TwoSinks,
) -> None:
    call = aloware()
    sinks.fabric.fail_next("permanent")

    outcome = await sinks.run(call)

    assert status_of(outcome, call).value == "dead_lettered" and sinks.world.acked(call)
    reason = sinks.world.dead_letters.reason_for(call.envelope.request_id) or ""
    assert reason.startswith("sink:fabric rejected:") and "powerbi" not in reason
    assert sinks.fact_keys() == ([CALL_KEY], [])


async def test_dimension_rows_reach_every_sink_and_one_failing_does_not_stop_the_other() -> None:
    world = World(RosterSnapshot(agents=(ADA,)))
    fabric, store = FakeSink(), world.ledger
    lanes = (
        SinkLane("powerbi", store, world.sink, "sink:powerbi"),
        SinkLane("fabric", NamespacedLedger(store, "fabric/"), fabric, "sink:fabric"),
    )
    ports = replace(world.ports, lanes=lanes)
    fabric.fail_next("transient", on="upsert")

    with pytest.raises(Exception, match="429"):
        await control.extend_dates(ports, config(), CALLER)
    after_outage = (len(world.sink.rows("DimDate")), len(fabric.rows("DimDate")))
    again = await control.extend_dates(ports, config(), CALLER)

    assert after_outage[0] == 62 and after_outage[1] == 0  # Power BI got its window anyway
    assert len(fabric.rows("DimDate")) == 62 and len(world.sink.rows("DimDate")) == 62
    assert again.counts["pushed"] == 62 and again.counts["already"] == 62  # each sink once
    assert len(world.sink.upserted) == 62  # no row pushed twice to Power BI

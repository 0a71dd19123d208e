"""Batches handed over from outside (a Lambda invocation's records) run under the breakers."""

from __future__ import annotations

from datetime import UTC

from pulse.adapters_in.breakers import Breakers, State
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.worker import InboxWorkers
from pulse.core.ingest import IngestConfig, IngestPorts
from pulse.core.model import Delivery, IngestEnvelope, RosterSnapshot
from tests.fakes import (
    FakeClock,
    FakeCrm,
    FakeDeadLetters,
    FakeInbox,
    FakeLedger,
    FakeRoster,
    FakeSink,
)


def workers(clock: FakeClock, dead_letters: FakeDeadLetters) -> InboxWorkers:
    ports = IngestPorts(
        parsers={},  # every envelope is dead-lettered ("no parser"): settled without the CRM
        inbox=FakeInbox(),
        dead_letters=dead_letters,
        ledger=FakeLedger(clock),
        sink=FakeSink(),
        roster=FakeRoster(RosterSnapshot(agents=())),
        crm=FakeCrm(),
    )
    return InboxWorkers(ports, IngestConfig(zone=UTC), clock, Metrics(), breakers=Breakers(clock))


def delivery(n: int, clock: FakeClock) -> Delivery:
    return Delivery(IngestEnvelope(f"r{n}", "zendesk", clock.now(), b"{}"), f"m{n}")


async def test_while_a_breaker_cools_down_the_whole_batch_is_held_without_running() -> None:
    clock, letters = FakeClock(), FakeDeadLetters()
    handed = workers(clock, letters)
    handed.breakers.record({"crm": "HubSpot answered 503"})
    batch = [delivery(1, clock), delivery(2, clock)]

    assert await handed.run_handed(batch) == batch
    assert letters.letters == [] and handed.batches == 0


async def test_an_empty_batch_takes_no_probe_and_the_next_one_probes_and_closes() -> None:
    clock, letters = FakeClock(), FakeDeadLetters()
    handed = workers(clock, letters)
    handed.breakers.record({"crm": "HubSpot answered 503"})
    clock.advance(5)  # past the first cool-down

    assert await handed.run_handed([]) == []
    assert handed.breakers["crm"].state is State.OPEN  # not left half-open by nothing

    assert await handed.run_handed([delivery(1, clock)]) == []
    assert handed.breakers["crm"].state is State.CLOSED and handed.breakers.intake_open
    assert handed.batches == 1 and len(letters.letters) == 1

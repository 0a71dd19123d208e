"""Breakers: open on a dependency's failure, one probe after the cool-down, close on success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pulse.adapters_in.breakers import Breakers, State
from pulse.adapters_in.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 9, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


def test_a_failure_opens_and_only_one_caller_probes_after_the_cooldown() -> None:
    clock = Clock()
    breakers = Breakers(clock, first_cooldown=timedelta(seconds=2))
    breakers.record({"sink": "sink unavailable: 503"})
    sink = breakers["sink"]
    assert sink.state is State.OPEN and not breakers.intake_open
    assert not sink.take_probe()  # still cooling down
    clock.at += timedelta(seconds=2)
    assert sink.take_probe() and sink.state is State.HALF_OPEN
    assert not sink.take_probe()  # one probe at a time
    breakers.record({}, frozenset({"sink"}))
    assert sink.state is State.CLOSED and breakers.intake_open


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    clock = Clock()
    breakers = Breakers(
        clock, first_cooldown=timedelta(seconds=1), longest_cooldown=timedelta(seconds=3)
    )
    breakers.record({"ledger": "throttled"})
    waits = []
    for _ in range(4):
        clock.at += timedelta(seconds=breakers["ledger"].seconds_to_probe())
        assert breakers["ledger"].take_probe()
        breakers.record({"ledger": "throttled"}, frozenset({"ledger"}))
        waits.append(breakers["ledger"].seconds_to_probe())
    assert waits == [2.0, 3.0, 3.0, 3.0]
    assert breakers["ledger"].opened == 1  # one outage, however many probes


def test_a_batch_says_nothing_of_dependencies_it_did_not_probe() -> None:
    clock = Clock()
    breakers = Breakers(clock)
    breakers.record({"crm": "crm unavailable"})
    breakers.record({}, frozenset({"sink"}))
    assert breakers["crm"].state is State.OPEN


def test_metrics_show_each_breakers_state() -> None:
    metrics = Metrics()
    breakers = Breakers(Clock(), metrics)
    breakers.record({"sink": "503"})
    text = metrics.render()
    assert 'pulse_breaker_state{dependency="sink",state="open"} 1' in text
    assert 'pulse_breaker_state{dependency="sink",state="closed"} 0' in text
    assert breakers.as_dict()["sink"]["state"] == "open"

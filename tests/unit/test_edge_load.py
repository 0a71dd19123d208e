"""The edge counts as saturated from a request rate (EDGE_BUSY_RPS), over 250 ms windows."""

from __future__ import annotations

from pulse.adapters_in.edge_load import EdgeLoad


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def paced(load: EdgeLoad, clock: Clock, rate: float, seconds: float) -> None:
    for _ in range(int(rate * seconds)):
        clock.now += 1 / rate
        load.entered()


def test_a_steady_thousand_a_second_is_not_saturated_at_two_thousand() -> None:
    clock = Clock()
    load = EdgeLoad(busy_rps=2000, monotonic=clock)
    paced(load, clock, 1000, 2.0)
    assert not load.busy


def test_three_thousand_a_second_is_saturated_within_a_window() -> None:
    clock = Clock()
    load = EdgeLoad(busy_rps=2000, monotonic=clock)
    paced(load, clock, 1000, 1.0)
    paced(load, clock, 3000, 0.1)
    assert load.busy


def test_an_edge_that_went_quiet_is_not_saturated() -> None:
    clock = Clock()
    load = EdgeLoad(busy_rps=2000, monotonic=clock)
    paced(load, clock, 5000, 1.0)
    assert load.busy
    clock.now += 0.6  # more than two windows without a request
    assert not load.busy


def test_zero_never_yields() -> None:
    clock = Clock()
    load = EdgeLoad(busy_rps=0, monotonic=clock)
    paced(load, clock, 10_000, 1.0)
    assert not load.busy

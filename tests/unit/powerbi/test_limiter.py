"""The limiter alone, on a hand-moved clock: every DESIGN §4 budget, backoff, the circuit breaker."""

from __future__ import annotations

import math
import random
from collections import deque

import pytest

from pulse.adapters_out.powerbi.limiter import Budgets, Limiter, Permit
from tests.emulators.clock import ManualTime


def limiter(time: ManualTime, jitter: float = 0.5, **budgets: int) -> Limiter:
    return Limiter(Budgets(**budgets), timebase=time, jitter=lambda: jitter)


def run_one(lim: Limiter, rows: int = 1, table: str = "FactEvent") -> None:
    assert lim.delay(rows) == 0
    lim.accepted(lim.acquire(table, rows))


def test_below_250k_rows_requests_are_spaced_half_a_second() -> None:
    time = ManualTime()
    lim = limiter(time)
    run_one(lim)

    assert lim.delay(1) == pytest.approx(0.5)  # 60 s / 120 requests
    time.advance(0.5)
    assert lim.delay(1) == 0


def test_a_request_counts_against_the_minute_until_a_minute_after_its_answer() -> None:
    time = ManualTime()
    lim = limiter(time, max_pending=500)
    permits = []
    for _ in range(120):
        permits.append(lim.acquire("FactEvent", 1))
        time.advance(0.5)
    assert lim.delay(1) == math.inf  # 120 in the window, none answered yet
    for permit in permits:
        lim.accepted(permit)  # all answered at t = 60

    assert lim.delay(1) == pytest.approx(60)
    time.advance(60)
    assert lim.delay(1) == 0


def test_past_250k_rows_one_request_every_30_seconds() -> None:
    time = ManualTime()
    lim = limiter(time)
    lim.seed({"FactEvent": 249_990})
    assert not lim.large
    run_one(lim, rows=10)  # FactEvent now holds 250,000 rows

    assert lim.large
    assert lim.delay(1) == pytest.approx(30)  # 3600 s / 120 requests
    time.advance(30)
    assert lim.delay(1) == 0


def test_requests_made_just_before_the_switch_still_count_in_the_hour() -> None:
    time = ManualTime()
    lim = limiter(time)
    for _ in range(120):
        run_one(lim)
        time.advance(0.5)
    lim.seed({"FactEvent": 250_000})  # now 120 requests sit in the last hour

    assert lim.delay(1) == pytest.approx(3_600 - 60)
    time.advance(3_600 - 60)
    assert lim.delay(1) == 0


def test_rows_in_flight_count_towards_the_250k_switch() -> None:
    time = ManualTime()
    lim = limiter(time)
    lim.seed({"DimDate": 245_000})
    lim.acquire("DimDate", 5_000)

    assert lim.large
    assert lim.spacing() == pytest.approx(30)


def test_deleting_a_table_leaves_the_hourly_regime() -> None:
    time = ManualTime()
    lim = limiter(time)
    lim.seed({"DimAgent": 300_000})
    lim.reset_table("DimAgent")

    assert not lim.large


def test_a_million_rows_an_hour() -> None:
    time = ManualTime()
    lim = limiter(time)
    for n in range(100):
        run_one(lim, rows=10_000, table=f"T{n % 5}")  # 200,000 rows each: below 250k
        time.advance(1)

    assert lim.delay(1) == pytest.approx(3_600 - 100)  # the first 10,000 rows must age out
    time.advance(3_600 - 100)
    assert lim.delay(10_000) == 0
    assert lim.delay(10_001) == pytest.approx(1)  # 20,000 rows needed back: two requests


def test_rows_in_flight_count_towards_the_hourly_rows() -> None:
    time = ManualTime()
    lim = limiter(time, max_pending=200)
    for n in range(99):
        run_one(lim, rows=10_000, table=f"T{n % 5}")
        time.advance(0.5)
    lim.acquire("T4", 10_000)
    time.advance(0.5)

    assert lim.delay(1) == pytest.approx(3_600 - 50)


def test_never_more_than_five_pending() -> None:
    time = ManualTime()
    lim = limiter(time)
    permits = []
    for _ in range(5):
        assert lim.delay(1) == 0
        permits.append(lim.acquire("FactEvent", 1))
        time.advance(1)

    assert lim.delay(1) == math.inf
    lim.accepted(permits[2])
    assert lim.delay(1) == 0


def test_retry_after_is_honoured_and_only_lengthened_by_jitter() -> None:
    for jitter in (0.0, 0.5, 1.0):
        time = ManualTime()
        lim = limiter(time, jitter=jitter)
        lim.throttled(lim.acquire("FactEvent", 10), retry_after=10)

        wait = lim.delay(1)
        assert 10 <= wait <= 10 + 2.1
        assert lim.table_rows() == {}  # a 429 added nothing


def test_errors_back_off_exponentially_then_open_the_circuit() -> None:
    time = ManualTime()
    lim = limiter(time, jitter=1.0)  # jitter 1 → the full ceiling
    waits = []
    for _ in range(5):
        lim.failed(lim.acquire("FactEvent", 1), maybe_landed=False)
        waits.append(lim.delay(1))
        time.advance(waits[-1])

    assert waits == pytest.approx([1, 2, 4, 8, 16])
    assert lim.breaker_open
    lim.failed(lim.acquire("FactEvent", 1), maybe_landed=False)
    assert lim.fail_fast_for() == pytest.approx(30)  # capped; new work fails fast meanwhile
    time.advance(30)
    assert lim.fail_fast_for() == 0
    lim.acquire("FactEvent", 1)  # the half-open probe
    assert lim.delay(1) == math.inf  # one probe at a time


def test_one_success_closes_the_circuit() -> None:
    time = ManualTime()
    lim = limiter(time, jitter=0.0)
    for _ in range(5):
        lim.failed(lim.acquire("FactEvent", 1), maybe_landed=False)
        time.advance(60)
    assert lim.breaker_open

    run_one(lim)

    assert not lim.breaker_open
    time.advance(0.5)
    assert lim.delay(1) == 0


def test_a_lost_answer_counts_its_rows_as_landed() -> None:
    time = ManualTime()
    lim = limiter(time)
    lim.failed(lim.acquire("FactEvent", 7), maybe_landed=True)

    assert lim.table_rows() == {"FactEvent": 7}


def test_equal_jitter_stays_between_half_and_the_whole_ceiling() -> None:
    for jitter in (0.0, 0.3, 1.0):
        time = ManualTime()
        lim = limiter(time, jitter=jitter)
        for _ in range(3):
            lim.failed(lim.acquire("FactEvent", 1), maybe_landed=False)
        assert 2 <= lim.delay(1) <= 4  # third failure: ceiling 4 s


def test_randomised_traffic_never_breaks_a_sliding_window_at_the_server() -> None:
    """Grants follow the limiter; each request reaches the server after a random delay and is
    answered after another. Checked at every arrival, like the emulator (and Power BI) would."""
    rng = random.Random(7)
    time = ManualTime()
    lim = Limiter(Budgets(), timebase=time, jitter=rng.random)
    lim.seed({"FactEvent": 240_000})  # crosses 250k during the run
    inflight: list[tuple[float, float, Permit]] = []  # (arrival, answer, permit)
    arrivals: deque[tuple[float, int]] = deque()
    stored = 240_000
    sent = 0
    while time.now < 4 * 3_600 and sent < 400:
        for arrival, answer, permit in sorted(inflight, key=lambda x: x[1]):
            if answer <= time.now:
                lim.accepted(permit)
                inflight.remove((arrival, answer, permit))
        rows = rng.choice([1, 500, 10_000])
        if lim.delay(rows) == 0:
            permit = lim.acquire("FactEvent", rows)
            arrival = time.now + rng.uniform(0, 2)
            answer = arrival + rng.uniform(0, 3)
            inflight.append((arrival, answer, permit))
            while arrivals and arrivals[0][0] <= arrival - 3_600:
                arrivals.popleft()
            minute = sum(1 for t, _ in arrivals if t > arrival - 60)
            assert minute < 120
            if stored >= 250_000:
                assert len(arrivals) < 120
            assert sum(n for _, n in arrivals) + rows <= 1_000_000
            pending = sum(1 for a, b, _ in inflight if a <= arrival < b)
            assert pending <= 5
            arrivals.append((arrival, rows))
            stored += rows
            sent += 1
        time.advance(rng.uniform(0.05, 20))
    assert sent >= 150

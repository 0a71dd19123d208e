"""Push budget contract (DESIGN §4): whoever keeps a Power BI dataset's budget — the in-memory
`Limiter` of one process, or `SharedBudget` in DynamoDB for several replicas — lets callers
together spend no more than the dataset allows, in any window: requests a minute, requests an
hour past the large-table switch (counting the hour's requests from before it), rows an hour,
requests pending at once."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from pulse.adapters_out.powerbi.limiter import HOUR, MINUTE, Budgets
from tests.contract.conftest import BUDGET_FACTORIES
from tests.support.powerbi.budgets import BudgetUnderTest

SMALL = Budgets(
    requests_per_minute=6,
    requests_per_hour_large=6,
    large_table_rows=1_000,
    rows_per_hour=100,
    max_pending=2,
)


@pytest.fixture(params=sorted(BUDGET_FACTORIES))
async def budget(request: pytest.FixtureRequest) -> AsyncIterator[BudgetUnderTest]:
    async with BUDGET_FACTORIES[request.param](SMALL) as under_test:
        yield under_test


async def test_callers_together_stay_inside_the_per_minute_budget(
    budget: BudgetUnderTest,
) -> None:
    callers = [budget.new_caller() for _ in range(3)]
    for _ in range(8):
        await asyncio.gather(*(budget.send(caller) for caller in callers))
    assert len(budget.grants) == 24
    assert budget.most_requests_in_any(MINUTE) <= SMALL.requests_per_minute
    times = sorted(t for t, _ in budget.grants)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= MINUTE / SMALL.requests_per_minute - 1e-6  # spread, not one burst


async def test_past_the_large_table_switch_the_hourly_budget_holds_for_every_caller(
    budget: BudgetUnderTest,
) -> None:
    first, second = budget.new_caller(), budget.new_caller()
    await budget.send(first, large=True)  # one caller saw a table pass the switch …
    for _ in range(SMALL.requests_per_hour_large + 2):
        await budget.send(second)  # … and the other is held to the hourly budget too
    assert budget.most_requests_in_any(HOUR) <= SMALL.requests_per_hour_large


async def test_requests_from_before_the_switch_count_in_the_hour_after_it(
    budget: BudgetUnderTest,
) -> None:
    small, large = budget.new_caller(), budget.new_caller()
    for _ in range(SMALL.requests_per_hour_large):
        await budget.send(small)  # the hour's whole budget, spent below the switch
    await budget.send(large, large=True)
    assert budget.most_requests_in_any(HOUR) <= SMALL.requests_per_hour_large


async def test_rows_per_hour_are_one_budget_for_all_callers(budget: BudgetUnderTest) -> None:
    first, second = budget.new_caller(), budget.new_caller()
    await budget.send(first, rows=60)
    await budget.send(second, rows=60)  # 120 > 100 in an hour: waits for the first to age out
    (first_at, _), (second_at, _) = budget.grants
    assert second_at - first_at >= HOUR
    assert budget.most_rows_in_any(HOUR) <= SMALL.rows_per_hour


async def test_no_more_than_max_pending_requests_are_open_at_once(
    budget: BudgetUnderTest,
) -> None:
    holders = [budget.new_caller() for _ in range(SMALL.max_pending)]
    held = [await caller.acquire(1, False) for caller in holders]
    waiter = budget.new_caller()
    third = asyncio.create_task(waiter.acquire(1, False))
    looked = budget.time.sleeps
    while budget.time.sleeps < looked + 5:  # it looked for a free slot five times, in vain
        assert not third.done()
        await asyncio.sleep(0.001)
    assert not third.done()
    await holders[0].release(held[0])
    ticket = await asyncio.wait_for(third, timeout=10)
    await waiter.release(ticket)
    await holders[1].release(held[1])

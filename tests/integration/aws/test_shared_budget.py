"""One Power BI budget across replicas: `SharedBudget` instances (one per replica) over one
DynamoDB table on moto, on a clock the test moves (each wait moves it), never spend more
than the dataset allows together."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from adapters_out.dynamodb.control import DynamoBudgetStore, DynamoJobLease
from adapters_out.powerbi.limiter import HOUR, MINUTE, Budgets
from adapters_out.powerbi.shared_budget import SharedBudget, spacing
from tests.fakes import FakeClock

SMALL = Budgets(
    requests_per_minute=6,
    requests_per_hour_large=6,
    large_table_rows=1_000,
    rows_per_hour=100,
    max_pending=2,
)


class Replicas:
    """Budgets of several replicas on one table and one moved clock; `grants` records when
    each request was allowed to go."""

    def __init__(self, dynamo: Any, table: str, budgets: Budgets = SMALL) -> None:
        self.clock = FakeClock()
        self.grants: list[tuple[float, int]] = []
        self._dynamo, self._table, self._budgets = dynamo, table, budgets

    def now(self) -> float:
        return self.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def replica(self, slot_lease: timedelta = timedelta(seconds=60)) -> SharedBudget:
        return SharedBudget(
            DynamoBudgetStore(self._dynamo, self._table, self.clock),
            DynamoJobLease(self._dynamo, self._table, self.clock),
            self._budgets,
            now=self.now,
            sleep=self.sleep,
            slot_lease=slot_lease,
        )

    async def send(self, budget: SharedBudget, rows: int = 1, large: bool = False) -> None:
        grant = await budget.acquire(rows, large)
        self.grants.append((grant.at, rows))
        await budget.release(grant)

    def most_in_any(self, window: float) -> int:
        times = sorted(t for t, _ in self.grants)
        return max(sum(1 for u in times if t <= u <= t + window) for t in times)


@pytest.fixture
def replicas(dynamo: Any, table: str) -> Replicas:
    return Replicas(dynamo, table)


async def test_three_replicas_together_stay_inside_the_per_minute_budget(
    replicas: Replicas,
) -> None:
    budgets = [replicas.replica() for _ in range(3)]
    for _ in range(8):
        await asyncio.gather(*(replicas.send(b) for b in budgets))
    assert len(replicas.grants) == 24
    assert replicas.most_in_any(MINUTE) <= SMALL.requests_per_minute
    gaps = [
        b - a
        for (a, _), (b, _) in zip(
            sorted(replicas.grants), sorted(replicas.grants)[1:], strict=False
        )
    ]
    assert min(gaps) >= spacing(SMALL, large=False) - 1e-6


async def test_past_the_large_table_switch_the_hourly_budget_holds_across_replicas(
    replicas: Replicas,
) -> None:
    first, second = replicas.replica(), replicas.replica()
    await replicas.send(first, large=True)  # one replica saw a table pass the switch …
    for _ in range(6):
        await replicas.send(second)  # … so the other, not knowing, is spaced hourly too
    assert replicas.most_in_any(HOUR) <= SMALL.requests_per_hour_large


async def test_rows_per_hour_are_shared(replicas: Replicas) -> None:
    first, second = replicas.replica(), replicas.replica()
    await replicas.send(first, rows=60)
    started = replicas.now()
    await replicas.send(second, rows=60)  # 120 > 100 in an hour: waits for the first to age out
    assert replicas.now() - started >= HOUR - 360  # at most one 6-minute bucket early


async def test_pending_slots_are_shared_and_a_dead_replicas_slot_is_freed_after_its_lease(
    replicas: Replicas,
) -> None:
    lease = timedelta(seconds=30)
    dead, alive = replicas.replica(lease), replicas.replica(lease)
    taken = replicas.now()
    first = await dead.acquire(1, False)  # both slots taken by a replica that then dies
    second = await dead.acquire(1, False)
    grant = await alive.acquire(1, False)  # its waits move the clock past the lease
    assert grant.at - taken >= lease.total_seconds()
    assert grant.slot in (first.slot, second.slot)
    await alive.release(grant)


async def test_a_write_over_a_stale_version_is_refused(dynamo: Any, table: str) -> None:
    store = DynamoBudgetStore(dynamo, table, FakeClock())
    assert await store.read("x") == (None, 0)
    assert await store.write("x", {"next_at": 1.0}, 0)
    assert not await store.write("x", {"next_at": 2.0}, 0)  # another replica wrote first
    assert await store.read("x") == ({"next_at": 1.0}, 1)
    assert await store.write("x", {"next_at": 3.0}, 1)
    assert await store.read("x") == ({"next_at": 3.0}, 2)


async def test_requests_from_before_the_switch_count_in_the_hour_after_it(
    replicas: Replicas,
) -> None:
    small, large = replicas.replica(), replicas.replica()
    for _ in range(SMALL.requests_per_hour_large):
        await replicas.send(small)  # the hour's whole budget, spent below the switch
    started = replicas.now()
    await replicas.send(large, large=True)
    assert replicas.grants[-1][0] - started >= HOUR - 2 * 360  # waited for them to age out
    assert replicas.most_in_any(HOUR) <= SMALL.requests_per_hour_large + 1

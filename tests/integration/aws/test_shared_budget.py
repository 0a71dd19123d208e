"""What only the shared budget in DynamoDB has to do: free the pending slot of a replica that
died once its lease ends, and refuse a write over a stale version. That it keeps every budget
across replicas is the push budget contract (tests/contract/test_push_budget_contract.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pulse.adapters_out.dynamodb.control import DynamoBudgetStore, DynamoJobLease
from pulse.adapters_out.powerbi.limiter import Budgets
from pulse.adapters_out.powerbi.shared_budget import SharedBudget
from tests.fakes import FakeClock
from tests.support.powerbi.budgets import MovedTime

TWO_PENDING = Budgets(max_pending=2)


async def test_a_dead_replicas_pending_slot_is_freed_after_its_lease(
    dynamo: Any, table: str
) -> None:
    time, lease = MovedTime(), timedelta(seconds=30)

    def replica() -> SharedBudget:
        return SharedBudget(
            DynamoBudgetStore(dynamo, table, time.clock),
            DynamoJobLease(dynamo, table, time.clock),
            TWO_PENDING,
            now=time.now,
            sleep=time.sleep,
            slot_lease=lease,
        )

    dead, alive = replica(), replica()
    taken = time.now()
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

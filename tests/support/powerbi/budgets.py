"""The two keepers of a Power BI dataset's push budget behind one test-facing shape, so one
contract suite (tests/contract/test_push_budget_contract.py) runs over both:

- "in-memory": the per-process `Limiter`, driven as the batcher's pump drives it (wait for
  `delay(rows)`, `acquire`, and `accepted` once the answer is in). Every caller is a worker of
  one process, so all of them share the one limiter;
- "dynamodb": `SharedBudget` over DynamoDB on moto (LEDGER=dynamodb). Every caller is a
  replica with its own `SharedBudget` on the one table.

Both run on one `FakeClock` that every wait moves, so an hour passes in milliseconds."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulse.adapters_out.dynamodb.control import DynamoBudgetStore, DynamoJobLease
from pulse.adapters_out.powerbi.limiter import Budgets, Limiter, Permit
from pulse.adapters_out.powerbi.shared_budget import SharedBudget
from tests.fakes import FakeClock
from tests.support.moto_server import dynamodb, new_table

TABLE = "FactEvent"
POLL_SEC = 0.5  # how often a caller the limiter holds at "inf" looks again, as the pump would


class Ticket(Protocol):
    @property
    def at(self) -> float:
        """The instant the request was allowed to start (the keeper's decision, which the
        clock may have passed by the time the caller hears of it)."""
        ...


class Caller(Protocol):
    """One worker (in-memory) or one replica (dynamodb) asking for PostRows turns."""

    async def acquire(self, rows: int, large: bool) -> Ticket:
        """Wait until a request of `rows` rows may start; `large`: this caller saw a table
        pass the 250,000-row switch."""
        ...

    async def release(self, ticket: Any) -> None:
        """The request was answered."""
        ...


@dataclass
class MovedTime:
    """One clock for all callers; every wait moves it (and yields, so others run)."""

    clock: FakeClock = field(default_factory=FakeClock)
    sleeps: int = 0

    def now(self) -> float:
        return self.clock.now().timestamp()

    def monotonic(self) -> float:
        return self.now()

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.clock.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class BudgetUnderTest:
    budgets: Budgets
    time: MovedTime
    new_caller: Callable[[], Caller]
    grants: list[tuple[float, int]] = field(default_factory=list)
    """(when, rows) of every request `send` let go."""

    async def send(self, caller: Caller, rows: int = 1, large: bool = False) -> None:
        ticket = await caller.acquire(rows, large)
        self.grants.append((ticket.at, rows))
        await caller.release(ticket)

    def most_requests_in_any(self, window: float) -> int:
        times = sorted(t for t, _ in self.grants)
        return max(sum(1 for u in times if t <= u < t + window) for t in times)

    def most_rows_in_any(self, window: float) -> int:
        grants = sorted(self.grants)
        return max(sum(r for u, r in grants if t <= u < t + window) for t, _ in grants)


@dataclass(frozen=True)
class LimiterTicket:
    permit: Permit
    at: float


class LimiterCaller:
    """A worker of the one process: the batcher's own wait on the shared `Limiter`."""

    def __init__(self, limiter: Limiter, time: MovedTime) -> None:
        self._limiter, self._time = limiter, time

    async def acquire(self, rows: int, large: bool) -> LimiterTicket:
        if large:  # the process's own sizes passed the switch (it learns them from answers)
            self._limiter.seed({TABLE: self._limiter.budgets.large_table_rows})
        while (delay := self._limiter.delay(rows)) > 0:
            await self._time.sleep(POLL_SEC if math.isinf(delay) else delay)
        return LimiterTicket(self._limiter.acquire(TABLE, rows), self._time.now())

    async def release(self, ticket: LimiterTicket) -> None:
        self._limiter.accepted(ticket.permit)


@asynccontextmanager
async def in_memory_budget(budgets: Budgets) -> AsyncIterator[BudgetUnderTest]:
    time = MovedTime()
    limiter = Limiter(budgets, timebase=time, jitter=lambda: 0.0)
    yield BudgetUnderTest(budgets, time, lambda: LimiterCaller(limiter, time))


@asynccontextmanager
async def dynamodb_budget(budgets: Budgets) -> AsyncIterator[BudgetUnderTest]:
    time = MovedTime()
    async with dynamodb() as client:
        table = await new_table(client)

        def replica() -> SharedBudget:
            return SharedBudget(
                DynamoBudgetStore(client, table, time.clock),
                DynamoJobLease(client, table, time.clock),
                budgets,
                now=time.now,
                sleep=time.sleep,
            )

        yield BudgetUnderTest(budgets, time, replica)

"""One Power BI dataset's request budget shared by every replica: spacing between requests, rows
per hour and pending requests, kept in a `BudgetStore` (DynamoDB with LEDGER=dynamodb) and a
`JobLease` (one lease per pending slot, so a replica that dies frees its slots after the lease).

Each process still runs its own limiter (DESIGN §4); this is the gate every PostRows passes as
well, so N replicas together stay inside what one dataset allows:
- requests are spaced by window / (limit - 1) across all replicas, so no 60 s window (or hour,
  past 250,000 rows) ever holds more than the limit;
- rows and requests are counted in 6-minute buckets, and the last 11 buckets (more than an
  hour) stay under the hourly row budget and, past 250,000 rows, under the hourly request
  budget (Power BI counts the hour's requests from before the switch too);
- at most `max_pending` requests hold a slot at once.
Every decision is a read, then a write conditional on the version read (optimistic), so two
replicas never both take the same instant."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pulse.adapters_out.powerbi.limiter import HOUR, MINUTE, Budgets
from pulse.ports.budget import BudgetStore
from pulse.ports.control import JobLease

BUCKET_SEC = 360.0  # 6 minutes
BUCKETS_KEPT = 11  # the current, partial bucket and ten before it: more than an hour


SLOT_POLL_SEC = 0.5  # while every pending slot is taken


@dataclass(frozen=True, slots=True)
class Grant:
    slot: str
    owner: str
    at: float = 0.0  # the shared instant the request was allowed to start


def spacing(budgets: Budgets, large: bool) -> float:
    """Seconds between two grants across all replicas: no window can hold more than its limit."""
    gap = MINUTE / max(1, budgets.requests_per_minute - 1)
    if large:
        gap = max(gap, HOUR / max(1, budgets.requests_per_hour_large - 1))
    return gap


def decide(
    state: dict[str, Any], now: float, rows: int, large: bool, budgets: Budgets
) -> tuple[float, dict[str, Any]]:
    """(seconds to wait, state unchanged) or (0, the state with this request granted)."""
    large = large or bool(state.get("large"))
    bucket = int(now // BUCKET_SEC)
    rows_in = _recent(state.get("rows", {}), bucket)
    requests_in = _recent(state.get("requests", {}), bucket)
    wait = float(state.get("next_at", -math.inf)) - now
    if sum(rows_in.values()) + rows > budgets.rows_per_hour:
        wait = max(wait, _aged_out(rows_in, now))
    if large and sum(requests_in.values()) + 1 > budgets.requests_per_hour_large:
        wait = max(wait, _aged_out(requests_in, now))
    if wait > 0:
        return wait, state
    rows_in[bucket] = rows_in.get(bucket, 0) + rows
    requests_in[bucket] = requests_in.get(bucket, 0) + 1
    granted = {
        "next_at": now + spacing(budgets, large),
        "large": large,
        "rows": {str(k): v for k, v in rows_in.items()},
        "requests": {str(k): v for k, v in requests_in.items()},
    }
    return 0.0, granted


def _recent(buckets: dict[str, Any], bucket: int) -> dict[int, int]:
    return {int(k): int(v) for k, v in buckets.items() if int(k) > bucket - BUCKETS_KEPT}


def _aged_out(buckets: dict[int, int], now: float) -> float:
    """Seconds until the oldest bucket leaves the window (inf-safe: 0 when there is none)."""
    if not buckets:
        return 0.0
    return (min(buckets) + BUCKETS_KEPT) * BUCKET_SEC - now


class SharedBudget:
    def __init__(
        self,
        store: BudgetStore,
        leases: JobLease,
        budgets: Budgets,
        *,
        now: Callable[[], float],
        sleep: Callable[[float], Any] = asyncio.sleep,
        name: str = "powerbi",
        slot_lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._store, self._leases, self._budgets = store, leases, budgets
        self._now, self._sleep = now, sleep
        self._name = name
        self._slot_lease = slot_lease
        self._owner = uuid.uuid4().hex[:12]

    async def acquire(self, rows: int, large: bool) -> Grant:
        """Wait for a pending slot and this request's turn; the caller `release`s the grant."""
        slot = await self._slot()
        try:
            while (wait := await self._turn(rows, large)) > 0:
                # Wake in time to renew the slot's lease while waiting for the turn.
                await self._sleep(min(wait, max(1.0, self._slot_lease.total_seconds() / 3)))
                await self._leases.renew(slot.slot, slot.owner, self._slot_lease)
        except BaseException:
            await self.release(slot)
            raise
        return Grant(slot.slot, slot.owner, -wait)

    async def release(self, grant: Grant) -> None:
        await self._leases.release(grant.slot, grant.owner)

    async def _slot(self) -> Grant:
        owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"
        while True:
            for index in range(self._budgets.max_pending):
                slot = f"{self._name}:pending:{index}"
                if await self._leases.acquire(slot, owner, self._slot_lease):
                    return Grant(slot, owner)
            await self._sleep(SLOT_POLL_SEC)

    async def _turn(self, rows: int, large: bool) -> float:
        """Seconds to wait, or minus the instant this request was granted (a write won)."""
        key = f"{self._name}:budget"
        while True:
            state, version = await self._store.read(key)
            now = self._now()
            wait, granted = decide(state or {}, now, rows, large, self._budgets)
            if wait > 0:
                return wait
            if await self._store.write(key, granted, version):
                return -now

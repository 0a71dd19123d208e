"""The one place that knows Power BI's push budgets (DESIGN §4) and when the next PostRows may go."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MINUTE = 60.0
HOUR = 3_600.0


class Timebase(Protocol):
    """Monotonic seconds and a matching sleep; tests pass a compressed clock for both."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTime:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_TIME = RealTime()


@dataclass(frozen=True, slots=True)
class Budgets:
    """Microsoft's "Push semantic model limitations" per dataset; every one is a setting."""

    requests_per_minute: int = 120
    requests_per_hour_large: int = 120  # once any table holds ≥ large_table_rows
    large_table_rows: int = 250_000
    rows_per_hour: int = 1_000_000
    max_pending: int = 5


@dataclass(eq=False, slots=True)
class Permit:
    """One granted PostRows request, until it completes."""

    table: str
    rows: int


class Limiter:
    """Decides when the next PostRows may start so that Power BI never has to answer 429.

    Windows slide, like the strictest reading of the documented limits. A request stays in
    a window from its grant until `window` seconds after its *response*: Power BI counts it
    somewhere in between, so freeing the slot any earlier could overshoot by one. Grants are
    also spaced by window/limit (0.5 s below 250k rows, 30 s above), which spreads the budget
    evenly and lets rows accumulate into full requests instead of spending it in one burst.

    Failures: 429 → wait Retry-After plus jitter; 5xx/timeouts/connection errors → equal-
    jitter exponential backoff; after `breaker_threshold` consecutive failures the circuit
    opens (new work fails fast until the cool-down ends, then one probe at a time).
    """

    def __init__(
        self,
        budgets: Budgets | None = None,
        *,
        timebase: Timebase = REAL_TIME,
        backoff_base_sec: float = 1.0,
        backoff_cap_sec: float = 30.0,
        breaker_threshold: int = 5,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.budgets = budgets or Budgets()
        self._time = timebase
        self._backoff_base = backoff_base_sec
        self._backoff_cap = backoff_cap_sec
        self._breaker_threshold = breaker_threshold
        self._jitter = jitter
        self._sizes: dict[str, int] = {}
        self._inflight: set[Permit] = set()
        self._inflight_rows: dict[str, int] = {}
        # (when it finished, rows it counts for) of each request answered in the last hour,
        # in completion order; older ones are dropped whenever the windows are read.
        self._completed: deque[tuple[float, int]] = deque()
        self._last_grant = -math.inf
        self._not_before = -math.inf
        self._failures = 0
        self.counters: dict[str, int] = {
            "granted": 0,
            "accepted": 0,
            "throttled": 0,
            "failed": 0,
            "rejected": 0,
            "breaker_opened": 0,
        }

    # --- table sizes (the 250k switch) ----------------------------------------------------

    def seed(self, counts: Mapping[str, int]) -> None:
        for table, rows in counts.items():
            self._sizes[table] = max(self._sizes.get(table, 0), int(rows))

    def reset_table(self, table: str) -> None:
        """DeleteRows emptied `table`."""
        self._sizes[table] = 0

    def table_rows(self) -> dict[str, int]:
        return dict(self._sizes)

    @property
    def large(self) -> bool:
        """Some table holds (or, counting requests in flight, may hold) ≥ large_table_rows."""
        threshold = self.budgets.large_table_rows
        tables = self._sizes.keys() | self._inflight_rows.keys()
        return any(
            self._sizes.get(t, 0) + self._inflight_rows.get(t, 0) >= threshold for t in tables
        )

    # --- the decision ---------------------------------------------------------------------

    @property
    def breaker_open(self) -> bool:
        return self._failures >= self._breaker_threshold

    def fail_fast_for(self) -> float:
        """Seconds left in an open circuit's cool-down (0 when new work may queue)."""
        if not self.breaker_open:
            return 0.0
        return max(0.0, self._not_before - self._time.monotonic())

    def spacing(self) -> float:
        b = self.budgets
        gap = MINUTE / b.requests_per_minute
        if self.large:
            gap = max(gap, HOUR / b.requests_per_hour_large)
        return gap

    def delay(self, rows: int) -> float:
        """Seconds until a request of `rows` rows may start: 0 now, inf until one completes."""
        now = self._time.monotonic()
        cap = 1 if self.breaker_open else self.budgets.max_pending
        if len(self._inflight) >= cap:
            return math.inf
        b = self.budgets
        wait = max(self._not_before - now, self._last_grant + self.spacing() - now)
        wait = max(wait, self._requests_wait(now, MINUTE, b.requests_per_minute))
        if self.large:
            wait = max(wait, self._requests_wait(now, HOUR, b.requests_per_hour_large))
        wait = max(wait, self._rows_wait(now, rows))
        return max(0.0, wait)

    def acquire(self, table: str, rows: int) -> Permit:
        permit = Permit(table, rows)
        self._inflight.add(permit)
        self._inflight_rows[table] = self._inflight_rows.get(table, 0) + rows
        self._last_grant = self._time.monotonic()
        self.counters["granted"] += 1
        return permit

    def _requests_wait(self, now: float, window: float, limit: int) -> float:
        answered = self._answered_within(now, window)
        count = len(self._inflight) + len(answered)
        if count < limit:
            return 0.0
        must_age_out = count - limit + 1
        if must_age_out > len(answered):
            return math.inf
        return answered[must_age_out - 1] + window - now

    def _rows_wait(self, now: float, rows: int) -> float:
        done_rows = self._rows_within_hour(now)
        excess = sum(self._inflight_rows.values()) + done_rows + rows - self.budgets.rows_per_hour
        if excess <= 0:
            return 0.0
        if done_rows < excess:
            return math.inf
        for at, counted in self._completed:  # the oldest first: when enough rows have aged out
            excess -= counted
            if excess <= 0:
                return at + HOUR - now
        return math.inf  # not reached: done_rows >= excess

    # --- the sliding windows over answered requests -----------------------------------------

    def _answered_within_hour(self, now: float) -> deque[tuple[float, int]]:
        completed = self._completed
        while completed and completed[0][0] <= now - HOUR:
            completed.popleft()
        return completed

    def _answered_within(self, now: float, window: float) -> list[float]:
        """When each request answered in the last `window` (≤ an hour) seconds finished, oldest
        first."""
        since = now - window
        recent: list[float] = []
        for at, _ in reversed(self._answered_within_hour(now)):  # a suffix: completion order
            if at <= since:
                break
            recent.append(at)
        recent.reverse()
        return recent

    def _rows_within_hour(self, now: float) -> int:
        return sum(counted for _, counted in self._answered_within_hour(now))

    # --- outcomes -------------------------------------------------------------------------

    def _finish(self, permit: Permit, counted_rows: int) -> float:
        now = self._time.monotonic()
        self._inflight.discard(permit)
        left = self._inflight_rows.get(permit.table, 0) - permit.rows
        if left > 0:
            self._inflight_rows[permit.table] = left
        else:
            self._inflight_rows.pop(permit.table, None)
        self._completed.append((now, counted_rows))
        return now

    def accepted(self, permit: Permit) -> None:
        self._finish(permit, permit.rows)
        self._sizes[permit.table] = self._sizes.get(permit.table, 0) + permit.rows
        self._failures = 0
        self.counters["accepted"] += 1

    def throttled(self, permit: Permit, retry_after: float) -> None:
        """429: rows were not added; the request still counts (conservative)."""
        now = self._finish(permit, 0)
        # Jitter only ever lengthens Retry-After, so replicas do not return in lockstep.
        wait = retry_after + min(5.0, 0.1 + 0.2 * retry_after) * self._jitter()
        self._not_before = max(self._not_before, now + wait)
        self.counters["throttled"] += 1

    def failed(self, permit: Permit, *, maybe_landed: bool) -> None:
        """5xx, timeout or lost connection. Rows that may have landed count everywhere."""
        now = self._finish(permit, permit.rows if maybe_landed else 0)
        if maybe_landed:
            self._sizes[permit.table] = self._sizes.get(permit.table, 0) + permit.rows
        self._failures += 1
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (self._failures - 1))
        wait = ceiling / 2 + ceiling / 2 * self._jitter()
        self._not_before = max(self._not_before, now + wait)
        self.counters["failed"] += 1
        if self._failures == self._breaker_threshold:
            self.counters["breaker_opened"] += 1

    def rejected(self, permit: Permit) -> None:
        """A definite answer other than success (400, 403…): counted, nothing added."""
        self._finish(permit, 0)
        self.counters["rejected"] += 1

    def snapshot(self) -> dict[str, Any]:
        now = self._time.monotonic()
        in_flight = len(self._inflight)
        return {
            "large": self.large,
            "in_flight": in_flight,
            "requests_last_minute": in_flight + len(self._answered_within(now, MINUTE)),
            "requests_last_hour": in_flight + len(self._answered_within_hour(now)),
            "rows_last_hour": sum(self._inflight_rows.values()) + self._rows_within_hour(now),
            "breaker_open": self.breaker_open,
            "paused_for": max(0.0, self._not_before - now),
            "table_rows": self.table_rows(),
            **self.counters,
        }

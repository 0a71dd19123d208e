"""Coalesces every worker's rows, per table, into the PostRows requests the limiter allows (DESIGN §4)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

from pulse.adapters_out.powerbi.errors import PowerBIThrottled, PowerBIUnavailable
from pulse.adapters_out.powerbi.limiter import REAL_TIME, Limiter, Permit, Timebase
from pulse.adapters_out.powerbi.shared_budget import Grant, SharedBudget
from pulse.core.errors import SinkPermanentError, SinkTransientError

log = logging.getLogger(__name__)

Send = Callable[[str, Sequence[str]], Awaitable[None]]
"""PostRows for one table: (table, JSON-encoded rows) → None, or a typed Power BI error."""


@dataclass(eq=False, slots=True)
class _Ticket:
    """One caller's hand-over: its future resolves when every part is accepted or one failed."""

    future: asyncio.Future[None]
    deadline: float
    open_parts: int = 0  # queued or in flight
    queued_parts: int = 0
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class _Part:
    ticket: _Ticket
    rows: list[str]


@dataclass(slots=True)
class BatcherStats:
    requests: int = 0
    rows_sent: int = 0
    rows_accepted: int = 0
    largest_request: int = 0
    throttled: int = 0
    unavailable: int = 0
    failed_requests: int = 0
    expired_tickets: int = 0


class Batcher:
    """Per-table queues drained by one pump task.

    The pump sends as soon as the limiter grants a request (it never lingers when budget is
    available) with as many queued rows as fit (≤ max_rows); while the limiter holds it back,
    rows accumulate, which is what turns a burst into few full requests. A failed request's
    rows go back to the front of their queue (429, 5xx, timeouts, lost connections) or fail
    their callers (400 and other definite refusals). A caller whose rows have not been sent
    within `max_wait_sec` gets a transient error and its rows leave the queue, so the inbox
    and ledger (not this process's memory) keep them while Power BI is down.
    """

    def __init__(
        self,
        send: Send,
        limiter: Limiter,
        *,
        timebase: Timebase = REAL_TIME,
        max_rows: int = 10_000,
        max_wait_sec: float = 80.0,
        shared: SharedBudget | None = None,
    ) -> None:
        self._send = send
        self._limiter = limiter
        self._shared = shared  # with several replicas: the dataset's budget they all spend
        self._time = timebase
        self._max_rows = max(1, min(max_rows, limiter.budgets.rows_per_hour))
        self._max_wait = max_wait_sec
        self._queues: dict[str, deque[_Part]] = {}
        self._queued_rows: dict[str, int] = {}
        self._inflight_tables: dict[str, int] = {}
        self._tickets: set[_Ticket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # The one wake-up: replaced (never cleared) on every change, so whoever looked at the
        # queues before waiting on it (the pump, drain, quiesce) sees the change after its look.
        self._changed = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = BatcherStats()
        self.last_error = ""

    # --- callers ----------------------------------------------------------------------------

    async def submit(self, rows_by_table: Mapping[str, Sequence[str]]) -> None:
        """Return when Power BI accepted every row; raise when some definitely were not."""
        if self._closing:
            raise SinkTransientError("the Power BI sink is shutting down")
        cooling = self._limiter.fail_fast_for()
        if cooling > 0:
            raise PowerBIUnavailable(
                f"Power BI keeps failing (circuit open, next probe in {cooling:.0f} s): "
                f"{self.last_error}"
            )
        parts = {table: list(rows) for table, rows in rows_by_table.items() if rows}
        if not parts:
            return
        ticket = _Ticket(
            asyncio.get_running_loop().create_future(), self._time.monotonic() + self._max_wait
        )
        for table, rows in parts.items():
            self._enqueue(table, _Part(ticket, rows))
        self._tickets.add(ticket)
        self._ensure_pump()
        self._notify()
        try:
            await ticket.future
        except asyncio.CancelledError:
            # The caller gave up (shutdown): unsent rows leave the queue; the ledger lease
            # lapses and the inbox redelivers them.
            self._settle_early(ticket, SinkTransientError("caller cancelled"))
            raise

    async def quiesce(self, table: str) -> None:
        """Return once `table` has nothing queued or in flight (before a DeleteRows)."""
        while self._queued_rows.get(table, 0) or self._inflight_tables.get(table, 0):
            await self._changed.wait()

    async def drain(self, timeout_sec: float) -> int:
        """Flush now, wait up to `timeout_sec` (real seconds), then fail what is left.
        Returns how many callers were still waiting when the budget ran out."""
        self._closing = True
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_sec
        while self._tickets and loop.time() < deadline:
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except TimeoutError:
                break
        abandoned = len(self._tickets)
        for ticket in list(self._tickets):
            self._settle_early(
                ticket, SinkTransientError("shut down before Power BI took these rows")
            )
        for task in list(self._tasks):
            task.cancel()
        if self._pump_task is not None:
            self._pump_task.cancel()
        await asyncio.gather(
            *self._tasks, *([self._pump_task] if self._pump_task else []), return_exceptions=True
        )
        return abandoned

    def queued_rows(self) -> int:
        return sum(self._queued_rows.values())

    # --- queue bookkeeping ------------------------------------------------------------------

    def _enqueue(self, table: str, part: _Part, *, front: bool = False) -> None:
        queue = self._queues.setdefault(table, deque())
        if front:
            queue.appendleft(part)
        else:
            queue.append(part)
        self._queued_rows[table] = self._queued_rows.get(table, 0) + len(part.rows)
        part.ticket.queued_parts += 1
        if not front:
            part.ticket.open_parts += 1

    def _withdraw(self, ticket: _Ticket) -> None:
        """Take the ticket's unsent parts out of every queue."""
        if not ticket.queued_parts:
            return
        for table, queue in self._queues.items():
            mine = [p for p in queue if p.ticket is ticket]
            if not mine:
                continue
            self._queues[table] = deque(p for p in queue if p.ticket is not ticket)
            self._queued_rows[table] -= sum(len(p.rows) for p in mine)
            ticket.queued_parts -= len(mine)
            ticket.open_parts -= len(mine)

    def _settle_early(self, ticket: _Ticket, error: BaseException) -> None:
        """Fail the ticket's unsent rows now; it resolves once nothing of it is in flight."""
        if ticket.error is None or (
            isinstance(error, SinkPermanentError)
            and not isinstance(ticket.error, SinkPermanentError)
        ):
            ticket.error = error
        self._withdraw(ticket)
        self._resolve_if_done(ticket)

    def _part_done(self, part: _Part, error: BaseException | None) -> None:
        ticket = part.ticket
        ticket.open_parts -= 1
        if error is not None:
            self._settle_early(ticket, error)
        else:
            self._resolve_if_done(ticket)

    def _resolve_if_done(self, ticket: _Ticket) -> None:
        if ticket.open_parts > 0:
            return
        self._tickets.discard(ticket)
        self._notify()  # drain and quiesce wait on this, whatever settled the ticket
        if ticket.future.done():
            return
        if ticket.error is None:
            ticket.future.set_result(None)
        else:
            ticket.future.set_exception(ticket.error)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- the pump -------------------------------------------------------------------------

    def _ensure_pump(self) -> None:
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self._pump(), name="powerbi-batcher")

    async def _pump(self) -> None:
        try:
            while True:
                changed = self._changed  # before looking: what changes from here on wakes us
                now = self._time.monotonic()
                self._expire(now)
                table = self._oldest_table()
                if table is None:
                    if self._closing and not self._tickets:
                        return
                    await changed.wait()
                    continue
                rows = min(self._queued_rows[table], self._max_rows)
                delay = self._limiter.delay(rows)
                if delay <= 0:
                    self._dispatch(table, rows)
                    continue
                await self._wait(min(delay, self._next_deadline() - now), changed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("powerbi batcher stopped")
            for ticket in list(self._tickets):
                self._settle_early(ticket, SinkTransientError(f"batcher failed: {exc!r}"))

    async def _wait(self, seconds: float, changed: asyncio.Event) -> None:
        """Until `seconds` pass (on the timebase) or `changed` is set, whichever is first."""
        if math.isinf(seconds):
            await changed.wait()
            return
        sleeper = asyncio.ensure_future(self._time.sleep(max(0.0, seconds)))
        waker = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _expire(self, now: float) -> None:
        for ticket in list(self._tickets):
            if ticket.queued_parts and ticket.deadline <= now:
                self.stats.expired_tickets += 1
                reason = self.last_error or "waiting for the request budget"
                self._settle_early(
                    ticket,
                    PowerBIUnavailable(
                        f"Power BI did not take these rows within {self._max_wait:.0f} s ({reason})"
                    ),
                )

    def _next_deadline(self) -> float:
        return min((t.deadline for t in self._tickets if t.queued_parts), default=math.inf)

    def _oldest_table(self) -> str | None:
        """The table whose head part has waited longest (tickets are created in time order)."""
        best: str | None = None
        best_deadline = math.inf
        for table, queue in self._queues.items():
            if queue and queue[0].ticket.deadline < best_deadline:
                best, best_deadline = table, queue[0].ticket.deadline
        return best

    def _dispatch(self, table: str, rows: int) -> None:
        queue = self._queues[table]
        taken: list[_Part] = []
        room = rows
        while room and queue:
            part = queue[0]
            if len(part.rows) <= room:
                queue.popleft()
                part.ticket.queued_parts -= 1
                taken.append(part)
                room -= len(part.rows)
            else:  # split: the head goes now, the rest keeps its place at the front
                head = _Part(part.ticket, part.rows[:room])
                part.rows = part.rows[room:]
                part.ticket.open_parts += 1
                taken.append(head)
                room = 0
        sent = rows - room
        self._queued_rows[table] -= sent
        self._inflight_tables[table] = self._inflight_tables.get(table, 0) + 1
        permit = self._limiter.acquire(table, sent)
        task = asyncio.create_task(self._post(table, taken, permit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, table: str, parts: list[_Part], permit: Permit) -> None:
        rows = list(chain.from_iterable(p.rows for p in parts))
        stats = self.stats
        stats.requests += 1
        stats.rows_sent += len(rows)
        stats.largest_request = max(stats.largest_request, len(rows))
        grant = None
        try:
            if self._shared is not None:
                grant = await self._shared.acquire(len(rows), self._limiter.large)
            await self._send(table, rows)
        except PowerBIThrottled as exc:
            self._limiter.throttled(permit, exc.retry_after)
            stats.throttled += 1
            self._retry_later(table, parts, exc)
        except PowerBIUnavailable as exc:
            self._limiter.failed(permit, maybe_landed=exc.maybe_landed)
            stats.unavailable += 1
            self._retry_later(table, parts, exc)
        except (SinkPermanentError, SinkTransientError) as exc:
            # 400 (Power BI's body in the message), or a refusal only an operator can fix.
            self._limiter.rejected(permit)
            stats.failed_requests += 1
            self.last_error = str(exc)
            for part in parts:
                self._part_done(part, exc)
        except asyncio.CancelledError:
            self._limiter.failed(permit, maybe_landed=True)
            for part in parts:
                self._part_done(part, PowerBIUnavailable("request abandoned at shutdown"))
            raise
        except Exception as exc:
            log.exception("PostRows %s failed unexpectedly", table)
            self._limiter.rejected(permit)
            stats.failed_requests += 1
            for part in parts:
                self._part_done(part, SinkTransientError(f"PostRows {table}: {exc!r}"))
        else:
            self._limiter.accepted(permit)
            stats.rows_accepted += len(rows)
            for part in parts:
                self._part_done(part, None)
        finally:
            if grant is not None:
                await self._release(grant)
            self._inflight_tables[table] -= 1
            self._notify()

    async def _release(self, grant: Grant) -> None:
        assert self._shared is not None
        try:
            await self._shared.release(grant)
        except Exception:  # the slot's lease frees it for every replica soon anyway
            log.warning("could not release a shared pending slot", exc_info=True)

    def _retry_later(self, table: str, parts: list[_Part], exc: PowerBIUnavailable) -> None:
        self.last_error = str(exc)
        for part in reversed(parts):
            if part.ticket.error is None:
                self._enqueue(table, part, front=True)  # still open: only queued again
            else:
                self._part_done(part, None)

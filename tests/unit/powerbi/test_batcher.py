"""The batcher with a fake PostRows: coalescing, splitting, who fails when, deadlines, drain."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pulse.adapters_out.powerbi.batcher import Batcher
from pulse.adapters_out.powerbi.errors import (
    PowerBIAccessDenied,
    PowerBIRejected,
    PowerBIThrottled,
    PowerBIUnavailable,
)
from pulse.adapters_out.powerbi.limiter import Budgets, Limiter
from pulse.core.errors import SinkPermanentError, SinkTransientError
from tests.emulators.clock import ManualTime


@dataclass
class FakePowerBI:
    """Records each PostRows; answers from a script of errors (None = accept)."""

    script: list[BaseException | None] = field(default_factory=list)
    requests: list[tuple[str, list[str]]] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def send(self, table: str, rows: Sequence[str]) -> None:
        self.requests.append((table, list(rows)))
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.stored.extend(rows)

    @property
    def sizes(self) -> list[int]:
        return [len(rows) for _, rows in self.requests]


def rows(prefix: str, count: int) -> list[str]:
    return [f'{{"EventKey":"{prefix}:{i}"}}' for i in range(count)]


def make(
    time: ManualTime,
    fake: FakePowerBI,
    *,
    max_rows: int = 100,
    max_wait: float = 80,
    **budgets: int,
) -> Batcher:
    limiter = Limiter(Budgets(**budgets), timebase=time, jitter=lambda: 0.0)
    return Batcher(fake.send, limiter, timebase=time, max_rows=max_rows, max_wait_sec=max_wait)


async def run_until(
    time: ManualTime, done: asyncio.Future[Any], step: float = 0.5, limit: int = 2_000
) -> None:
    """Move the clock in steps until `done` completes (bounded)."""
    for _ in range(limit):
        await time.settle()
        if done.done():
            return
        time.advance(step)
    raise AssertionError("did not finish")


async def test_concurrent_callers_share_full_requests() -> None:
    time, fake = ManualTime(), FakePowerBI()
    batcher = make(time, fake, max_rows=100)
    callers = asyncio.gather(*(batcher.submit({"FactEvent": rows(f"c{c}", 10)}) for c in range(25)))

    await run_until(time, callers)

    assert sorted(fake.stored) == sorted(r for c in range(25) for r in rows(f"c{c}", 10))
    assert max(fake.sizes) <= 100
    assert len(fake.requests) <= 4  # 250 rows: a first small request, then full ones


async def test_a_caller_larger_than_a_request_is_split_and_resolves_once_all_land() -> None:
    time, fake = ManualTime(), FakePowerBI()
    batcher = make(time, fake, max_rows=100)
    caller = asyncio.ensure_future(batcher.submit({"FactEvent": rows("big", 250)}))

    await run_until(time, caller)

    assert fake.sizes == [100, 100, 50]
    assert fake.stored == rows("big", 250)  # order kept


async def test_tables_go_in_separate_requests() -> None:
    time, fake = ManualTime(), FakePowerBI()
    batcher = make(time, fake)
    caller = asyncio.ensure_future(
        batcher.submit({"DimDate": rows("d", 2), "DimAgent": rows("a", 3)})
    )

    await run_until(time, caller)

    assert sorted((t, len(r)) for t, r in fake.requests) == [("DimAgent", 3), ("DimDate", 2)]


async def test_a_400_fails_only_the_callers_in_that_request_with_power_bis_body() -> None:
    time, fake = ManualTime(), FakePowerBI()
    fake.gate = asyncio.Event()
    batcher = make(time, fake, max_rows=10)
    first = asyncio.ensure_future(batcher.submit({"FactEvent": rows("first", 10)}))
    await time.settle()  # first is in flight alone
    second = asyncio.ensure_future(batcher.submit({"FactEvent": rows("second", 5)}))
    fake.script = [
        PowerBIRejected(
            "PostRows FactEvent", status=400, body='{"error":{"code":"InvalidRequest"}}'
        ),
        None,
    ]
    fake.gate.set()

    await run_until(time, asyncio.gather(first, second, return_exceptions=True))

    with pytest.raises(SinkPermanentError, match="InvalidRequest"):
        first.result()
    assert second.result() is None
    assert fake.stored == rows("second", 5)


async def test_429_puts_the_rows_back_and_waits_retry_after() -> None:
    time, fake = ManualTime(), FakePowerBI(script=[PowerBIThrottled("429", retry_after=20)])
    batcher = make(time, fake)
    caller = asyncio.ensure_future(batcher.submit({"FactEvent": rows("r", 5)}))
    await time.settle()
    assert len(fake.requests) == 1

    time.advance(19.9)
    await time.settle()
    assert len(fake.requests) == 1  # not before Retry-After
    await run_until(time, caller, step=0.05)

    assert fake.stored == rows("r", 5)
    assert batcher.stats.throttled == 1


async def test_5xx_and_lost_connections_are_retried_with_backoff() -> None:
    time, fake = (
        ManualTime(),
        FakePowerBI(
            script=[
                PowerBIUnavailable("503", status=503),
                PowerBIUnavailable("connection lost", maybe_landed=True),
                None,
            ]
        ),
    )
    batcher = make(time, fake)
    caller = asyncio.ensure_future(batcher.submit({"FactEvent": rows("r", 5)}))

    await run_until(time, caller, step=0.25)

    assert len(fake.requests) == 3
    assert fake.stored == rows("r", 5)
    assert batcher.stats.unavailable == 2


async def test_rows_not_sent_within_the_wait_fail_transiently_and_leave_the_queue() -> None:
    time = ManualTime()
    fake = FakePowerBI(script=[PowerBIUnavailable("503", status=503)] * 100)
    batcher = make(time, fake, max_wait=80)
    caller = asyncio.ensure_future(batcher.submit({"FactEvent": rows("r", 5)}))

    await run_until(time, caller, step=1)

    with pytest.raises(SinkTransientError, match="within 80 s"):
        caller.result()
    assert batcher.queued_rows() == 0
    sent = len(fake.requests)
    time.advance(600)
    await time.settle()
    assert len(fake.requests) == sent  # nothing left to retry


async def test_an_open_circuit_fails_new_work_fast() -> None:
    time = ManualTime()
    fake = FakePowerBI(script=[PowerBIUnavailable("503", status=503)] * 5)
    batcher = make(time, fake, max_wait=1_000)
    caller = asyncio.ensure_future(batcher.submit({"FactEvent": rows("r", 5)}))
    while batcher.stats.unavailable < 5:
        await time.settle()
        time.advance(0.25)

    with pytest.raises(PowerBIUnavailable, match="circuit open"):
        await batcher.submit({"FactEvent": rows("late", 1)})
    await run_until(time, caller)  # the queued rows are the half-open probe
    assert fake.stored == rows("r", 5)
    after = asyncio.ensure_future(batcher.submit({"FactEvent": rows("after", 1)}))
    await run_until(time, after)  # closed again: accepted, not failed fast
    assert after.result() is None


async def test_a_refusal_only_an_operator_can_fix_fails_at_once() -> None:
    time = ManualTime()
    fake = FakePowerBI(script=[PowerBIAccessDenied("not a member", status=403)])
    batcher = make(time, fake)

    with pytest.raises(PowerBIAccessDenied):
        await batcher.submit({"FactEvent": rows("r", 5)})
    assert len(fake.requests) == 1


async def test_a_cancelled_caller_takes_its_unsent_rows_back() -> None:
    time, fake = ManualTime(), FakePowerBI()
    fake.gate = asyncio.Event()
    batcher = make(time, fake, max_rows=10)
    first = asyncio.ensure_future(batcher.submit({"FactEvent": rows("first", 10)}))
    await time.settle()
    second = asyncio.ensure_future(batcher.submit({"FactEvent": rows("second", 5)}))
    await time.settle()

    second.cancel()
    fake.gate.set()
    await run_until(time, first)
    time.advance(5)
    await time.settle()

    assert fake.stored == rows("first", 10)
    assert batcher.queued_rows() == 0


async def test_drain_sends_what_waits_now_and_fails_what_cannot_go() -> None:
    time, fake = ManualTime(), FakePowerBI()
    batcher = make(time, fake, max_rows=10, requests_per_minute=1)  # one request a minute
    first = asyncio.ensure_future(batcher.submit({"FactEvent": rows("first", 10)}))
    second = asyncio.ensure_future(batcher.submit({"FactEvent": rows("second", 5)}))
    await time.settle()

    abandoned = await batcher.drain(timeout_sec=0.05)

    assert abandoned == 1
    assert first.result() is None
    with pytest.raises(SinkTransientError, match="shut down"):
        second.result()
    with pytest.raises(SinkTransientError, match="shutting down"):
        await batcher.submit({"FactEvent": rows("late", 1)})


async def test_drain_returns_as_soon_as_expired_callers_are_settled() -> None:
    time = ManualTime()
    fake = FakePowerBI(script=[PowerBIUnavailable("503", status=503)] * 100)
    batcher = make(time, fake, max_wait=10)
    caller = asyncio.ensure_future(batcher.submit({"FactEvent": rows("r", 5)}))
    await time.settle()

    drained = asyncio.ensure_future(batcher.drain(timeout_sec=30))
    await run_until(time, caller, step=1)  # expires after 10 emulated seconds
    abandoned = await asyncio.wait_for(drained, timeout=2)  # not the 30 s budget

    assert abandoned == 0
    assert isinstance(caller.exception(), SinkTransientError)

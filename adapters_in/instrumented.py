"""The ledger and the sink as the ingest path sees them: each call timed for `/metrics` and
traced as a span, a child of the batch span the worker opened."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from pulse.adapters_in.metrics import Metrics, Reading
from pulse.adapters_in.tracing import LazyTracer
from pulse.core.errors import SinkPermanentError
from pulse.core.model import DimRow, FactEvent
from pulse.ports.ledger import Claim, Ledger
from pulse.ports.sink import Sink

tracer = LazyTracer("pulse.ports")
T = TypeVar("T")


class MeasuredLedger:
    """`Ledger`, with `pulse_ledger_duration_seconds{operation,outcome}` and a span per call."""

    def __init__(self, ledger: Ledger, metrics: Metrics) -> None:
        self._ledger = ledger
        self._metrics = metrics

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]], keys: int) -> T:
        started = time.perf_counter()
        outcome = "error"
        with tracer.start_as_current_span(f"ledger.{operation}", attributes={"pulse.keys": keys}):
            try:
                result = await call()
                outcome = "ok"
                return result
            finally:
                self._metrics.observe(
                    "ledger_duration_seconds",
                    time.perf_counter() - started,
                    operation=operation,
                    outcome=outcome,
                )

    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        return await self._timed("claim", lambda: self._ledger.claim(keys, lease), len(keys))

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        count = len(keys if keys is not None else claim.claimed)
        await self._timed(
            "commit", lambda: self._ledger.commit(claim, keys, forever=forever), count
        )

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        count = len(keys if keys is not None else claim.claimed)
        await self._timed("release", lambda: self._ledger.release(claim, keys), count)

    async def done_among(self, keys: Sequence[str]) -> frozenset[str]:
        return await self._timed("done_among", lambda: self._ledger.done_among(keys), len(keys))

    async def purge_expired(self) -> int:
        return await self._ledger.purge_expired()

    async def ping(self) -> None:
        await self._ledger.ping()

    async def close(self) -> None:
        await self._ledger.close()


class MeasuredSink:
    """`Sink`, with `pulse_sink_append_duration_seconds{sink,outcome}`, `pulse_sink_rows_total`
    and a span per call."""

    def __init__(self, sink: Sink, metrics: Metrics, name: str) -> None:
        self._sink = sink
        self._metrics = metrics
        self.name = name
        metrics.gauge_source(sink_readings(name, sink))

    @contextmanager
    def _span(self, operation: str, rows: int) -> Iterator[None]:
        with tracer.start_as_current_span(
            f"sink.{operation}", attributes={"pulse.sink": self.name, "pulse.rows": rows}
        ):
            yield

    async def append(self, facts: Sequence[FactEvent]) -> None:
        started = time.perf_counter()
        outcome = "transient"
        try:
            with self._span("append", len(facts)):
                await self._sink.append(facts)
            outcome = "ok"
        except SinkPermanentError:
            outcome = "permanent"
            raise
        finally:
            self._metrics.observe(
                "sink_append_duration_seconds",
                time.perf_counter() - started,
                sink=self.name,
                outcome=outcome,
            )
        self._metrics.inc("sink_rows_total", len(facts), sink=self.name)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        with self._span("upsert", len(rows)):
            await self._sink.upsert(rows)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        with self._span("replace", len(rows)):
            await self._sink.replace(table, rows)

    async def ping(self) -> None:
        await self._sink.ping()

    async def drain(self, budget_sec: float) -> None:
        await self._sink.drain(budget_sec)

    async def close(self) -> None:
        await self._sink.close()


# What each push sink's `stats()` calls its counters (Power BI's batcher, Fabric's sender).
_SCRAPED_KEYS = {
    "sink_requests_total": ("requests",),
    "sink_throttled_total": ("throttled_429",),
    "sink_retries_total": ("retries",),
    "sink_failed_requests_total": ("failed_requests",),
    "sink_queued_rows": ("queued_rows",),
    "sink_requests_in_flight": ("in_flight",),
    "sink_requests_last_hour": ("requests_last_hour",),
    "sink_rows_last_hour": ("rows_last_hour",),
}


def sink_readings(name: str, sink: Any) -> Callable[[], list[Reading]]:
    """A gauge source over a push sink's `stats()` snapshot; a sink without one (the local
    warehouse) yields nothing. Power BI retries every 429 and 5xx and counts no retries
    itself: its retries are those two counters together."""

    def read() -> list[Reading]:
        stats = getattr(sink, "stats", None)
        if not callable(stats):
            return []
        snapshot = dict(stats())
        if "retries" not in snapshot and "throttled_429" in snapshot:
            snapshot["retries"] = snapshot["throttled_429"] + snapshot.get("unavailable", 0)
        readings: list[Reading] = []
        for series, (key,) in _SCRAPED_KEYS.items():
            if isinstance(snapshot.get(key), int | float):
                readings.append((series, {"sink": name}, float(snapshot[key])))
        return readings

    return read

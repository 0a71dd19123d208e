"""The Power BI push sink (ports.sink.Sink): facts and dimension rows through one batcher per dataset."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from pulse.adapters_out.entra.tokens import TokenProvider
from pulse.adapters_out.powerbi.batcher import Batcher
from pulse.adapters_out.powerbi.client import PowerBIClient
from pulse.adapters_out.powerbi.config import PowerBIConfig
from pulse.adapters_out.powerbi.dataset import resolve_dataset_id
from pulse.adapters_out.powerbi.limiter import REAL_TIME, Budgets, Limiter, Timebase
from pulse.adapters_out.powerbi.schema import encode_row
from pulse.adapters_out.powerbi.shared_budget import SharedBudget
from pulse.adapters_out.push.admission import Admission
from pulse.core.errors import SinkPermanentError
from pulse.core.model import DimRow, FactEvent
from pulse.core.schema import BY_NAME, FACT_EVENT, key_of, table_of
from pulse.ports.control import RowCounts

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


class PowerBISink:
    """Every row goes through the batcher, so facts from all workers and dimension rows share
    one request budget per dataset; `append` returns once Power BI accepted the rows.

    Rows are encoded (and checked against Power BI's limits) in the caller's coroutine: a
    value Power BI would refuse fails that caller alone with `SinkPermanentError`, instead of
    a 400 that would fail every caller sharing the request.
    """

    def __init__(
        self,
        client: PowerBIClient,
        *,
        dataset_id: str | None,
        dataset_name: str = "Pulse",
        budgets: Budgets | None = None,
        max_rows_per_request: int = 10_000,
        append_timeout_sec: float = 80.0,
        row_counts: RowCounts | None = None,
        timebase: Timebase = REAL_TIME,
        drain_timeout_sec: float = 10.0,
        closers: Sequence[Closer] = (),
        shared: SharedBudget | None = None,
    ) -> None:
        self._client = client
        self._configured_id = dataset_id
        self._dataset_name = dataset_name
        # Table sizes kept beside the ledger: they seed the limiter (the 250k switch), every
        # accepted request adds its rows, a DeleteRows resets the table.
        self._row_counts = row_counts
        self._drain_timeout = drain_timeout_sec
        self._closers = tuple(closers)
        self.limiter = Limiter(budgets, timebase=timebase)
        self.batcher = Batcher(
            self._post_rows,
            self.limiter,
            timebase=timebase,
            max_rows=max_rows_per_request,
            max_wait_sec=append_timeout_sec,
            shared=shared,
        )
        self._dataset_id: str | None = None
        self._resolving: asyncio.Future[str] | None = None
        self._replacing: dict[str, asyncio.Lock] = {}
        # Dimension keys Power BI accepted from this process since the table's last DeleteRows
        self._landed: dict[str, set[str]] = {}
        self._gate = Admission("Power BI")

    @classmethod
    def from_config(
        cls,
        config: PowerBIConfig,
        tokens: TokenProvider,
        *,
        row_counts: RowCounts | None = None,
        drain_timeout_sec: float = 10.0,
        timebase: Timebase = REAL_TIME,
        transport: httpx.AsyncBaseTransport | None = None,
        shared: SharedBudget | None = None,
    ) -> PowerBISink:
        """The sink for the configured dataset; `close()` closes its HTTP client, not `tokens`
        (the caller's, closed after the sink)."""
        client = PowerBIClient.from_config(config, tokens, transport=transport)
        return cls(
            client,
            dataset_id=config.dataset_id,
            dataset_name=config.dataset_name,
            budgets=config.budgets,
            max_rows_per_request=config.max_rows_per_request,
            append_timeout_sec=config.append_timeout_sec,
            row_counts=row_counts,
            timebase=timebase,
            drain_timeout_sec=drain_timeout_sec,
            closers=(client.aclose,),
            shared=shared,
        )

    # --- FactSink ---------------------------------------------------------------------------

    async def append(self, facts: Sequence[FactEvent]) -> None:
        if not facts:
            return
        encoded = [encode_row(fact, FACT_EVENT) for fact in facts]
        async with self._gate.admitted():
            await self.dataset_id()
            await self.batcher.submit({FACT_EVENT.name: encoded})

    async def ping(self) -> None:
        """Token, workspace and dataset reachable (for /readyz and `pulse check`)."""
        async with self._gate.admitted():
            await self._client.check_token()
            await self._client.list_datasets()
            await self._client.get_tables(await self.dataset_id())

    async def drain(self, budget_sec: float) -> None:
        """Refuse new calls, let admitted ones finish and the batcher flush (within the
        budget, in real seconds), and fail what is left as transient."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_sec
        await self._gate.close(budget_sec)
        await self.batcher.drain(max(0.0, deadline - loop.time()))

    async def close(self) -> None:
        """Drain (at once if the daemon already did), then close the clients."""
        try:
            await self.drain(0.0 if self._gate.closing else self._drain_timeout)
        finally:
            for close in self._closers:
                await close()

    # --- DimensionSink ----------------------------------------------------------------------

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        """Rows whose key Power BI already accepted from this process are left out. Power BI
        has no upsert, and a key twice on the one side of a relationship breaks the model:
        - one call can land in part (past 250k rows, one request per 30 s and one table per
          request, a second table can outwait POWERBI__APPEND_TIMEOUT_SEC after the first
          landed): the caller's retry must not add the first table's keys again;
        - a replace of the same table (the roster sync) may be running: its rows land first,
          and these are checked against them."""
        if not rows:
            return
        async with self._gate.admitted():
            for name in {table_of(row).name for row in rows}:
                replacing = self._replacing.get(name)
                if replacing is not None and replacing.locked():
                    async with replacing:
                        pass
            by_table: dict[str, list[str]] = {}
            for row in rows:
                table = table_of(row)
                if key_of(row) not in self._landed.get(table.name, ()):
                    by_table.setdefault(table.name, []).append(encode_row(row, table))
            if not by_table:
                return
            await self.dataset_id()
            await self.batcher.submit(by_table)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        """DeleteRows (the whole table: the API has no filter) then PostRows of `rows`."""
        definition = BY_NAME.get(table)
        if definition is None:
            raise SinkPermanentError(f"no table {table!r} in the star schema")
        encoded = []
        for row in rows:
            if table_of(row) is not definition:
                raise SinkPermanentError(f"a {type(row).__name__} row cannot go to {table}")
            encoded.append(encode_row(row, definition))
        async with self._gate.admitted(), self._replacing.setdefault(table, asyncio.Lock()):
            dataset_id = await self.dataset_id()
            # Rows queued for this table before the call would otherwise land after the
            # delete and survive it.
            await self.batcher.quiesce(table)
            await self._client.delete_rows(dataset_id, table)
            self._landed.pop(table, None)
            self.limiter.reset_table(table)
            await self._count(table, 0, reset=True)
            if encoded:
                await self.batcher.submit({table: encoded})

    # --- plumbing -------------------------------------------------------------------------

    async def dataset_id(self) -> str:
        """The configured id, or the one found by name; seeds the limiter's table sizes once.
        Concurrent first callers share one lookup and wake together, so a cold start's burst
        reaches the batcher in one go (a failed lookup is retried by the next call)."""
        if self._dataset_id is not None:
            return self._dataset_id
        if self._resolving is None or (
            self._resolving.done() and self._resolving.exception() is not None
        ):
            self._resolving = asyncio.ensure_future(self._resolve())
        return await asyncio.shield(self._resolving)

    async def _resolve(self) -> str:
        resolved = await resolve_dataset_id(self._client, self._configured_id, self._dataset_name)
        if self._row_counts is not None:
            self.limiter.seed(await self._row_counts.get_all())
        self._dataset_id = resolved
        return resolved

    async def _post_rows(self, table: str, rows: Sequence[str]) -> None:
        assert self._dataset_id is not None
        await self._client.post_rows(self._dataset_id, table, rows)
        if table != FACT_EVENT.name:  # dimension rows are few; facts may repeat (DISTINCTCOUNT)
            column = BY_NAME[table].key
            self._landed.setdefault(table, set()).update(str(json.loads(r)[column]) for r in rows)
        await self._count(table, len(rows))

    async def _count(self, table: str, rows: int, *, reset: bool = False) -> None:
        """Keep the persistent table size; a failed write only makes the next start's seed low
        (Power BI already has the rows, so it must not fail them)."""
        if self._row_counts is None:
            return
        try:
            if reset:
                await self._row_counts.set(table, rows)
            else:
                await self._row_counts.add(table, rows)
        except Exception:
            log.warning("could not record Power BI row count for %s", table, exc_info=True)

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics: requests, rows, 429s, breaker, budgets in use."""
        s = self.batcher.stats
        return {
            **self.limiter.snapshot(),
            "requests": s.requests,
            "rows_sent": s.rows_sent,
            "rows_accepted": s.rows_accepted,
            "largest_request": s.largest_request,
            "throttled_429": s.throttled,
            "unavailable": s.unavailable,
            "failed_requests": s.failed_requests,
            "expired_batches": s.expired_tickets,
            "queued_rows": self.batcher.queued_rows(),
        }

"""Where facts and dimension rows go: local SQLite, Power BI push dataset, Fabric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pulse.core.model import DimRow, FactEvent


class FactSink(Protocol):
    async def append(self, facts: Sequence[FactEvent]) -> None:
        """Return when the sink accepted every row. Raise `SinkTransientError` (try later) or
        `SinkPermanentError` (rejected for good, with the sink's own error text)."""
        ...

    async def ping(self) -> None: ...

    async def drain(self, budget_sec: float) -> None:
        """Refuse new calls and flush what is buffered within `budget_sec`; what cannot be
        flushed in time fails as transient (its envelopes are redelivered)."""
        ...

    async def close(self) -> None: ...


class DimensionSink(Protocol):
    async def upsert(self, rows: Sequence[DimRow]) -> None:
        """Add dimension rows (rows of several tables may be mixed)."""
        ...

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        """Make `table` hold exactly `rows`."""
        ...


class Sink(FactSink, DimensionSink, Protocol):
    """One adapter usually serves both."""

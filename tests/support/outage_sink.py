"""A real sink behind a switch, for outage tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pulse.core.errors import SinkTransientError
from pulse.core.model import DimRow, FactEvent


class OutageSink:
    """The real warehouse behind a switch: while `down`, every write fails as a 503 would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise SinkTransientError("503 Service Unavailable")

    async def append(self, facts: Sequence[FactEvent]) -> None:
        self._check()
        await self.inner.append(facts)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        self._check()
        await self.inner.upsert(rows)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        self._check()
        await self.inner.replace(table, rows)

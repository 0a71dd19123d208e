"""The gate a sink's calls pass: counted while in progress, refused once the sink is closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from pulse.core.errors import SinkTransientError


class Admission:
    """`async with gate.admitted(): …` around every call; `await gate.close(budget)` refuses new
    calls (as transient, so the inbox redelivers them) and waits up to `budget` seconds for
    the admitted ones."""

    def __init__(self, sink: str) -> None:
        self._sink = sink
        self.closing = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        if self.closing:
            raise SinkTransientError(f"the {self._sink} sink is shutting down")
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def close(self, budget_sec: float) -> None:
        self.closing = True
        with suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), budget_sec)

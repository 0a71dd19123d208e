"""Time for emulators and the code under test: real, compressed, or moved by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class RealTime:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ScaledTime:
    """Emulated seconds pass `factor` times faster than real ones; the sink, its limiter and
    the emulator share one instance, so an emulated hour takes 3600 / factor real seconds."""

    def __init__(self, factor: float = 1.0, origin: float | None = None) -> None:
        self.factor = factor
        # `origin` (a time.monotonic() reading, system-wide on Linux) lets another process
        # share this clock: the daemon under test runs on the emulator's emulated time.
        self.origin = time.monotonic() if origin is None else origin

    def monotonic(self) -> float:
        return (time.monotonic() - self.origin) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


class ManualTime:
    """Time moves only when a test calls `advance`; sleepers wake when their moment comes."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def settle(self, rounds: int = 20) -> None:
        """Let woken tasks run (a few loop turns)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

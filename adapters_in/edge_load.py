"""How busy the edge is now: the inbox workers hold back while it is saturated."""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_SEC = 0.25  # the request rate is counted over windows this long


class EdgeLoad:
    """Webhook requests a second, counted on the loop's thread (plain numbers, no lock).

    Saturated means at least `busy_rps`: a rate, not the requests waiting in the handler,
    because those rise at a steady load too whenever the loop is late for a moment, and
    workers that yielded then would turn the moment into a backlog."""

    def __init__(
        self,
        busy_rps: float,
        window_sec: float = WINDOW_SEC,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy_rps = busy_rps
        self.window_sec = window_sec
        self._monotonic = monotonic
        self._started = monotonic()
        self._count = 0
        self._last_rate = 0.0  # of the window before the current one

    def entered(self) -> None:
        now = self._monotonic()
        if now - self._started >= self.window_sec:
            self._last_rate = self._count / (now - self._started)
            self._started, self._count = now, 0
        self._count += 1

    @property
    def busy(self) -> bool:
        if self.busy_rps <= 0:
            return False
        elapsed = self._monotonic() - self._started
        if elapsed >= 2 * self.window_sec:
            return False  # no request for a whole window: idle whatever came before
        current = self._count / elapsed if elapsed >= self.window_sec / 4 else 0.0
        return max(current, self._last_rate if elapsed < self.window_sec else 0.0) >= self.busy_rps

"""How busy the edge is now: the inbox workers hold back while it is saturated."""

from __future__ import annotations

import time

# Requests inside the webhook handler at once from which the edge counts as busy. At a steady
# 1,000 events/s a request waits about one group commit (a few in the handler at a time); a
# client saturating the edge keeps one per connection waiting (32 in the benchmark).
BUSY_AT = 8
# A worker looks between batches, when the loop has just been its own and the requests that
# waited are not in the handler yet: a busy moment this recent still counts.
BUSY_HOLD_SEC = 0.1


class EdgeLoad:
    """Webhook requests being stored now (the loop's thread only: a plain counter)."""

    def __init__(self, busy_at: int = BUSY_AT, hold_sec: float = BUSY_HOLD_SEC) -> None:
        self.in_flight = 0
        self.busy_at = busy_at
        self.hold_sec = hold_sec
        self._busy_until = 0.0

    def entered(self) -> None:
        self.in_flight += 1
        if self.in_flight >= self.busy_at:
            self._busy_until = time.monotonic() + self.hold_sec

    def left(self) -> None:
        self.in_flight -= 1

    @property
    def busy(self) -> bool:
        return self.in_flight >= self.busy_at or time.monotonic() < self._busy_until

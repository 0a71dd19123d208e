"""In-memory fakes of the ports: tiny classes that remember what happened to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2025, 11, 5, 17, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

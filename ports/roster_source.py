"""Where DimAgent sync reads the roster from, and how it tells the gate the roster changed."""

from __future__ import annotations

from typing import Protocol

from pulse.core.model import RosterSnapshot


class RosterSource(Protocol):
    async def fetch(self) -> RosterSnapshot:
        """Ask the roster's owner now, past any cache; raise `TransientError` when it cannot
        answer and `PermanentError` when it refuses (a bad token)."""
        ...


class RosterCache(Protocol):
    async def refresh(self, snapshot: RosterSnapshot) -> None:
        """Make the gate of this process count exactly `snapshot`'s agents from now on."""
        ...

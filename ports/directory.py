"""Who counts and who owns what: the ring-group roster and the CRM directory."""

from __future__ import annotations

from typing import Protocol

from core.model import CrmObject, RosterSnapshot


class Roster(Protocol):
    async def snapshot(self) -> RosterSnapshot:
        """The current ring-group roster (cached by the adapter as it sees fit)."""
        ...


class CrmDirectory(Protocol):
    async def lookup(self, object_type: str, object_id: str) -> CrmObject | None:
        """The CRM object (`email` or `ticket`) with its owner's email; None when it does not
        exist. Raise `TransientError` when the CRM cannot answer now."""
        ...

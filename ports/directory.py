"""Who counts and who owns what: the ring-group roster and the CRM directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pulse.core.model import CrmObject, RosterSnapshot


class Roster(Protocol):
    async def snapshot(self) -> RosterSnapshot:
        """The current ring-group roster (cached by the adapter as it sees fit)."""
        ...


class CrmDirectory(Protocol):
    async def lookup(self, object_type: str, object_id: str) -> CrmObject | None:
        """The CRM object (`email` or `ticket`) with its owner's email; None when it does not
        exist. Raise `TransientError` when the CRM cannot answer now."""
        ...


@dataclass(frozen=True, slots=True)
class CrmPage:
    """One page of a CRM listing; `expected` is how many the CRM said the whole window holds."""

    objects: tuple[CrmObject, ...]
    expected: int


class CrmListing(Protocol):
    def created(self, object_type: str, since: datetime, until: datetime) -> AsyncIterator[CrmPage]:
        """The `email`s or `ticket`s created in [since, until), a page at a time, each with
        its owner's email resolved as `CrmDirectory.lookup` resolves it (overrides included)
        and `created_at` set. Raise `TransientError` when the CRM cannot answer now."""
        ...

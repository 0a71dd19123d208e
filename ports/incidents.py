"""Where incidents and each source's last request live, shared by every replica (DESIGN §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pulse.core.incidents import Incident

__all__ = ["Incident", "IncidentStore"]


class IncidentStore(Protocol):
    """Each signature has one head: its current incident (pending, open or last resolved).
    Writes to a head are conditional on the version read, so of replicas racing to open or
    resolve one incident exactly one succeeds; every incident that opened is kept by id."""

    async def head(self, signature: str) -> tuple[Incident | None, int]:
        """The signature's current incident and its version (None and 0 when never seen)."""
        ...

    async def save(self, incident: Incident, version: int | None) -> bool:
        """Write `incident` as its signature's head if the head is still at `version` (0: no
        head yet) and keep it by id once it opened; False (nothing written) when another
        writer moved the head. `version=None` rewrites only the record kept by id."""
        ...

    async def get(self, incident_id: str) -> Incident | None: ...

    async def recent(self, limit: int = 50) -> list[Incident]:
        """Incidents that opened, newest first (pending ones are not listed)."""
        ...

    async def open(self) -> list[Incident]:
        """The heads that are open now."""
        ...

    async def saw(self, source: str, at: datetime) -> None:
        """A request from `source` arrived at `at` (kept only if later than the one stored)."""
        ...

    async def last_seen(self) -> dict[str, datetime]:
        """The last request of each source any replica saw."""
        ...

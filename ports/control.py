"""The control plane's stores: audit, applied versions, nonces, owner overrides, row counts, job leases (DESIGN §5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

# The records are domain types (core builds them); they are re-exported here for the adapters.
from pulse.core.records import AppliedVersion, AuditRecord

__all__ = [
    "AppliedVersion",
    "AuditLog",
    "AuditRecord",
    "JobLease",
    "NonceStore",
    "OwnerOverrides",
    "RowCounts",
    "VersionStore",
]


class AuditLog(Protocol):
    async def append(self, record: AuditRecord) -> None: ...

    async def recent(self, limit: int = 50) -> list[AuditRecord]:
        """The newest records first."""
        ...


class VersionStore(Protocol):
    """Every applied version of each document, the newest being the one in force."""

    async def get(self, document: str, version: int | None = None) -> AppliedVersion | None:
        """The newest version of `document`, or the one numbered `version`; None if never stored."""
        ...

    async def put(self, applied: AppliedVersion) -> bool:
        """Store it as the newest and in the history if its version is newer than the newest
        stored; False (and nothing written) when it is stale or equal."""
        ...

    async def history(self, document: str) -> list[AppliedVersion]:
        """Every version of `document` ever stored, oldest first."""
        ...

    async def get_all(self, prefix: str = "") -> list[AppliedVersion]:
        """Every stored document whose name starts with `prefix`, by name."""
        ...


class NonceStore(Protocol):
    async def remember(self, nonce: str, ttl: timedelta) -> bool:
        """True the first time a nonce is seen within `ttl`; False for a replay."""
        ...


class OwnerOverrides(Protocol):
    """Admin-set mapping of a CRM owner (id or lower-cased email) to a roster agent id."""

    async def get(self, owner: str) -> str | None: ...

    async def set(self, owner: str, agent_id: str | None) -> None:
        """Map `owner` to `agent_id`; None removes the override."""
        ...

    async def get_all(self) -> dict[str, str]: ...


class RowCounts(Protocol):
    """Rows each sink table holds, as the Power BI limiter counts them (DESIGN §4)."""

    async def add(self, table: str, rows: int) -> None: ...

    async def set(self, table: str, rows: int) -> None:
        """After a table is cleared and repopulated."""
        ...

    async def get_all(self) -> dict[str, int]: ...


class JobLease(Protocol):
    """Single flight across replicas: one owner runs a named job until its lease passes."""

    async def acquire(self, name: str, owner: str, ttl: timedelta) -> bool:
        """True when `owner` now holds `name` (free, expired, or already ours)."""
        ...

    async def renew(self, name: str, owner: str, ttl: timedelta) -> bool:
        """Extend our lease; False when it is no longer ours."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up if it is still ours."""
        ...

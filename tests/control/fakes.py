"""In-memory fakes of the control plane's ports: tiny classes that remember what happened."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from core.control import Caller, ControlConfig, ControlPorts
from core.model import DimRow, RosterSnapshot
from core.schema import key_of, table_of
from ports.control import AppliedVersion, AuditRecord
from ports.ledger import Claim
from tests.fakes import FakeClock


class FakeSink:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, DimRow]] = {}
        self.writes = 0

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        self.writes += 1
        for row in rows:
            self.tables.setdefault(table_of(row).name, {})[key_of(row)] = row

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        self.writes += 1
        self.tables[table] = {key_of(r): r for r in rows}

    def rows(self, table: str) -> list[DimRow]:
        return list(self.tables.get(table, {}).values())


class FakeLedger:
    def __init__(self) -> None:
        self.done: set[str] = set()
        self.pending: dict[str, str] = {}
        self.forever: set[str] = set()  # committed with no TTL

    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        token = uuid.uuid4().hex
        claimed = [k for k in keys if k not in self.done and k not in self.pending]
        for k in claimed:
            self.pending[k] = token
        return Claim(
            token,
            tuple(claimed),
            tuple(k for k in keys if k in self.done),
            tuple(k for k in keys if k in self.pending and k not in claimed),
        )

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        if forever:
            self.forever.update(keys or claim.claimed)
        for k in keys or claim.claimed:
            if self.pending.get(k) == claim.token:
                del self.pending[k]
                self.done.add(k)

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        for k in keys or claim.claimed:
            if self.pending.get(k) == claim.token:
                del self.pending[k]


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def append(self, record: AuditRecord) -> None:
        self.records.append(record)

    async def recent(self, limit: int = 50) -> list[AuditRecord]:
        return list(reversed(self.records))[:limit]


class FakeVersions:
    def __init__(self) -> None:
        self.documents: dict[str, AppliedVersion] = {}

    async def get(self, document: str) -> AppliedVersion | None:
        return self.documents.get(document)

    async def put(self, applied: AppliedVersion) -> bool:
        stored = self.documents.get(applied.document)
        if stored is not None and stored.version >= applied.version:
            return False
        self.documents[applied.document] = applied
        return True

    async def get_all(self, prefix: str = "") -> list[AppliedVersion]:
        return [v for k, v in sorted(self.documents.items()) if k.startswith(prefix)]


class FakeLeases:
    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.taken: list[str] = []

    async def acquire(self, name: str, owner: str, ttl: timedelta) -> bool:
        if self.held.get(name, owner) != owner:
            return False
        self.held[name] = owner
        self.taken.append(name)
        return True

    async def renew(self, name: str, owner: str, ttl: timedelta) -> bool:
        return self.held.get(name) == owner

    async def release(self, name: str, owner: str) -> None:
        if self.held.get(name) == owner:
            del self.held[name]


class FakeRoster:
    """RosterSource and RosterCache at once: answers `snapshot`, remembers refreshes."""

    def __init__(self, snapshot: RosterSnapshot) -> None:
        self.snapshot = snapshot
        self.refreshed: list[RosterSnapshot] = []

    async def fetch(self) -> RosterSnapshot:
        return self.snapshot

    async def refresh(self, snapshot: RosterSnapshot) -> None:
        self.refreshed.append(snapshot)


class World:
    """Every fake wired into ControlPorts, so a test reads its effects off one object."""

    def __init__(self, roster: RosterSnapshot | None = None) -> None:
        self.sink = FakeSink()
        self.ledger = FakeLedger()
        self.audit = FakeAudit()
        self.versions = FakeVersions()
        self.leases = FakeLeases()
        self.clock = FakeClock(datetime(2026, 11, 5, 15, 0, tzinfo=UTC))
        self.roster = FakeRoster(roster or RosterSnapshot(agents=()))
        self.ports = ControlPorts(
            sink=self.sink,
            ledger=self.ledger,
            audit=self.audit,
            versions=self.versions,
            leases=self.leases,
            clock=self.clock,
            roster_source=self.roster,
            roster_cache=self.roster,
        )

    def wrote_nothing(self) -> bool:
        return (
            self.sink.writes == 0
            and not self.ledger.done
            and not self.ledger.pending
            and not self.versions.documents
            and not self.roster.refreshed
        )


CALLER = Caller(who="test", owner="run-1")


def config(**overrides: object) -> ControlConfig:
    from zoneinfo import ZoneInfo

    from core.dimensions import DateWindow
    from core.model import Goal, MetricID

    values: dict[str, object] = {
        "zone": ZoneInfo("America/New_York"),
        "goals": {m: Goal(m, 10.0, 0.8) for m in MetricID},
        "window": DateWindow(back_days=31, ahead_days=30),
    }
    values.update(overrides)
    return ControlConfig(**values)  # type: ignore[arg-type]

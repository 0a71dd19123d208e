"""In-memory fakes of the ports (ingest and control plane): tiny classes that remember what
happened to them."""

from __future__ import annotations

import itertools
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pulse.core.control import Caller, ControlConfig, ControlPorts
from pulse.core.dead_letters import DeadLetterFilter
from pulse.core.errors import SinkPermanentError, SinkTransientError, TransientError
from pulse.core.model import CrmObject, Delivery, DimRow, FactEvent, IngestEnvelope, RosterSnapshot
from pulse.core.schema import key_of, table_of
from pulse.ports.control import AppliedVersion, AuditRecord
from pulse.ports.inbox import DeadLetter, InboxStats
from pulse.ports.ledger import Claim


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2025, 11, 5, 17, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FakeInbox:
    """Hands out what was put, and remembers which receipts were acked or given back (and when)."""

    def __init__(self) -> None:
        self.waiting: list[IngestEnvelope] = []
        self.acked: list[str] = []
        self.retried: list[tuple[str, timedelta]] = []
        self._receipts = itertools.count(1)

    async def put(self, envelope: IngestEnvelope) -> None:
        self.waiting.append(envelope)

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        taken, self.waiting = self.waiting[:max_items], self.waiting[max_items:]
        return [Delivery(e, f"r{next(self._receipts)}") for e in taken]

    async def ack(self, receipts: Sequence[str]) -> None:
        self.acked.extend(receipts)

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        self.retried.extend((r, delay) for r in receipts)

    def retry_delay_of(self, receipt: str) -> timedelta | None:
        return next((d for r, d in self.retried if r == receipt), None)

    async def stats(self) -> InboxStats:
        return InboxStats(depth=len(self.waiting), oldest_age_sec=0.0, dead_letters=0)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class FakeDeadLetters:
    """Keeps each dead letter with its reason."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.letters: list[DeadLetter] = []
        self.replayed: list[DeadLetter] = []

    async def add(self, delivery: Delivery, reason: str) -> None:
        self.letters.append(
            DeadLetter(delivery.envelope, reason, self.clock.now(), delivery.attempt)
        )

    def reason_for(self, request_id: str) -> str | None:
        return next((d.reason for d in self.letters if d.envelope.request_id == request_id), None)

    def _matching(self, where: DeadLetterFilter | None) -> list[DeadLetter]:
        return [
            d
            for d in sorted(self.letters, key=lambda d: d.dead_at)
            if where is None or where.matches(d.envelope.source, d.reason, d.dead_at)
        ]

    async def list(
        self, limit: int = 100, where: DeadLetterFilter | None = None, offset: int = 0
    ) -> list[DeadLetter]:
        return self._matching(where)[offset : offset + limit]

    async def count(self, where: DeadLetterFilter | None = None) -> int:
        return len(self._matching(where))

    async def replay(
        self, request_ids: Sequence[str] | None = None, where: DeadLetterFilter | None = None
    ) -> int:
        moved = [
            d
            for d in self._matching(where)
            if request_ids is None or d.envelope.request_id in request_ids
        ]
        self.replayed += moved
        self.letters = [d for d in self.letters if d not in moved]
        return len(moved)

    async def purge(self, dead_before: datetime) -> int:
        kept = [d for d in self.letters if d.dead_at >= dead_before]
        purged, self.letters = len(self.letters) - len(kept), kept
        return purged


NO_EXPIRY = datetime.max.replace(tzinfo=UTC)


class FakeLedger:
    """The "Exactly once" item per key: {state, lease_until, claim_token, expires_at}, on a
    FakeClock; `done`, `pending` and `forever` are the same items seen by key."""

    def __init__(self, clock: FakeClock | None = None, ttl: timedelta = timedelta(days=14)) -> None:
        self.clock = clock or FakeClock()
        self.ttl = ttl
        self.items: dict[str, dict[str, Any]] = {}

    def state(self, key: str) -> str | None:
        item = self.items.get(key)
        return item["state"] if item else None

    def keys_in(self, state: Literal["PENDING", "DONE"], prefix: str = "") -> set[str]:
        return {k for k, v in self.items.items() if v["state"] == state and k.startswith(prefix)}

    @property
    def done(self) -> set[str]:
        return self.keys_in("DONE")

    @property
    def pending(self) -> dict[str, str]:
        """PENDING keys and the claim token each is held under."""
        return {k: v["claim_token"] for k, v in self.items.items() if v["state"] == "PENDING"}

    @property
    def forever(self) -> set[str]:
        """DONE keys committed with no TTL."""
        return {k for k, v in self.items.items() if v.get("expires_at") == NO_EXPIRY}

    def hold(self, key: str, lease: timedelta = timedelta(minutes=2)) -> None:
        """Someone else (another worker) holds `key` PENDING under a live lease."""
        self.items[key] = {
            "state": "PENDING",
            "lease_until": self.clock.now() + lease,
            "claim_token": "someone-else",
        }

    def mark_done(self, key: str) -> None:
        """Someone else (ingest, another replica) already committed `key`, with no TTL."""
        self.items[key] = {
            "state": "DONE",
            "lease_until": None,
            "claim_token": "someone-else",
            "expires_at": NO_EXPIRY,
        }

    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        token = secrets.token_hex(8)
        now = self.clock.now()
        claimed, done, busy = [], [], []
        for key in dict.fromkeys(keys):
            item = self.items.get(key)
            if item and item["state"] == "DONE":
                done.append(key)
            elif item and item["lease_until"] >= now:
                busy.append(key)
            else:
                claimed.append(key)
                self.items[key] = {
                    "state": "PENDING",
                    "lease_until": now + lease,
                    "claim_token": token,
                }
        return Claim(token, tuple(claimed), tuple(done), tuple(busy))

    def _ours(self, claim: Claim, keys: Sequence[str] | None) -> list[str]:
        return [
            k
            for k in (claim.claimed if keys is None else keys)
            if (item := self.items.get(k))
            and item["state"] == "PENDING"
            and item["claim_token"] == claim.token
        ]

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        for key in self._ours(claim, keys):
            self.items[key] = {
                "state": "DONE",
                "lease_until": None,
                "claim_token": claim.token,
                "expires_at": NO_EXPIRY if forever else self.clock.now() + self.ttl,
            }

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        for key in self._ours(claim, keys):
            del self.items[key]

    async def done_among(self, keys: Sequence[str]) -> frozenset[str]:
        return frozenset(k for k in keys if self.state(k) == "DONE")

    async def purge_expired(self) -> int:
        now = self.clock.now()
        expired = [
            k for k, v in self.items.items() if v["state"] == "DONE" and v["expires_at"] < now
        ]
        for key in expired:
            del self.items[key]
        return len(expired)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


SinkFailure = Literal["transient", "permanent"]


class FakeSink:
    """Rows per table, keyed like the real sinks (a repeated key changes nothing for facts),
    every upserted row in order, and how many writes (append, upsert, replace) went through.

    `fail_next(kind, on=...)` makes the next `append` (or `upsert`) raise the port's error.
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self.upserted: list[DimRow] = []
        self.writes = 0
        self._failures: dict[str, list[SinkFailure]] = defaultdict(list)

    def fail_next(self, kind: SinkFailure, on: Literal["append", "upsert"] = "append") -> None:
        self._failures[on].append(kind)

    def rows(self, table: str) -> list[Any]:
        return list(self.tables.get(table, {}).values())

    def facts(self) -> list[FactEvent]:
        return self.rows("FactEvent")

    def _maybe_fail(self, operation: str) -> None:
        if self._failures[operation]:
            kind = self._failures[operation].pop(0)
            if kind == "transient":
                raise SinkTransientError("429 Too Many Requests (fake)")
            raise SinkPermanentError("400 column MetricID rejected (fake)")

    async def append(self, facts: Sequence[FactEvent]) -> None:
        self._maybe_fail("append")
        self.writes += 1
        for fact in facts:
            self.tables.setdefault("FactEvent", {}).setdefault(fact.EventKey, fact)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        self._maybe_fail("upsert")
        self.writes += 1
        self.upserted.extend(rows)
        for row in rows:
            self.tables.setdefault(table_of(row).name, {})[key_of(row)] = row

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        self.writes += 1
        self.tables[table] = {key_of(r): r for r in rows}

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class FakeRoster:
    """Roster, RosterSource and RosterCache at once: `snapshot` and `fetch` answer `current`;
    `refresh` is remembered (and changes nothing)."""

    def __init__(self, current: RosterSnapshot) -> None:
        self.current = current
        self.refreshed: list[RosterSnapshot] = []

    async def snapshot(self) -> RosterSnapshot:
        return self.current

    async def fetch(self) -> RosterSnapshot:
        return self.current

    async def refresh(self, snapshot: RosterSnapshot) -> None:
        self.refreshed.append(snapshot)


class FakeCrm:
    """CRM objects by (type, id). `unavailable` makes every lookup a transient failure;
    `flaky` only the lookups of those (type, id) pairs."""

    def __init__(self, objects: Mapping[tuple[str, str], CrmObject] | None = None) -> None:
        self.objects = dict(objects or {})
        self.unavailable = False
        self.flaky: set[tuple[str, str]] = set()
        self.lookups: list[tuple[str, str]] = []

    def add(self, obj: CrmObject) -> None:
        self.objects[(obj.object_type, obj.object_id)] = obj

    async def lookup(self, object_type: str, object_id: str) -> CrmObject | None:
        self.lookups.append((object_type, object_id))
        if self.unavailable or (object_type, object_id) in self.flaky:
            raise TransientError("HubSpot answered 503 (fake)")
        return self.objects.get((object_type, object_id))


# --- the control plane's stores ---------------------------------------------------------------


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
        self.kept: dict[str, list[AppliedVersion]] = {}

    async def get(self, document: str, version: int | None = None) -> AppliedVersion | None:
        if version is None:
            return self.documents.get(document)
        return next((v for v in self.kept.get(document, []) if v.version == version), None)

    async def put(self, applied: AppliedVersion) -> bool:
        stored = self.documents.get(applied.document)
        if stored is not None and stored.version >= applied.version:
            return False
        self.documents[applied.document] = applied
        self.kept.setdefault(applied.document, []).append(applied)
        return True

    async def history(self, document: str) -> list[AppliedVersion]:
        return list(self.kept.get(document, []))

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


class World:
    """Every fake wired into the control plane's ControlPorts, so a test reads its effects
    off one object."""

    def __init__(self, roster: RosterSnapshot | None = None) -> None:
        self.clock = FakeClock(datetime(2026, 11, 5, 15, 0, tzinfo=UTC))
        self.sink = FakeSink()
        self.ledger = FakeLedger(self.clock)
        self.audit = FakeAudit()
        self.versions = FakeVersions()
        self.leases = FakeLeases()
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

    from pulse.core.dimensions import DateWindow
    from pulse.core.model import Goal, MetricID

    values: dict[str, object] = {
        "zone": ZoneInfo("America/New_York"),
        "goals": {m: Goal(m, 10.0, 0.8) for m in MetricID},
        "window": DateWindow(back_days=31, ahead_days=30),
    }
    values.update(overrides)
    return ControlConfig(**values)  # type: ignore[arg-type]

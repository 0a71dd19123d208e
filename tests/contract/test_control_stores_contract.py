"""Control-plane store contract: the same behaviour from the SQLite and the DynamoDB stores."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_out.dynamodb import control as dynamo
from pulse.adapters_out.dynamodb.incidents import DynamoIncidentStore
from pulse.adapters_out.sqlite import control as sqlite
from pulse.adapters_out.sqlite.incidents import SqliteIncidentStore
from pulse.core import incidents
from pulse.core.incidents import Change, IncidentRules, State
from pulse.ports.control import (
    AppliedVersion,
    AuditLog,
    AuditRecord,
    JobLease,
    NonceStore,
    OwnerOverrides,
    RowCounts,
    VersionStore,
)
from pulse.ports.incidents import IncidentStore
from tests.fakes import FakeClock
from tests.support.moto_server import dynamodb, new_table


@dataclass
class Stores:
    audit: AuditLog
    versions: VersionStore
    nonces: NonceStore
    owners: OwnerOverrides
    row_counts: RowCounts
    leases: JobLease
    incidents: IncidentStore


@pytest.fixture(params=["sqlite", "dynamodb"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Stores]:
    if request.param == "sqlite":
        db = sqlite.open_control_db(tmp_path / "control.sqlite")
        yield Stores(
            sqlite.SqliteAuditLog(db, clock),
            sqlite.SqliteVersionStore(db, clock),
            sqlite.SqliteNonceStore(db, clock),
            sqlite.SqliteOwnerOverrides(db, clock),
            sqlite.SqliteRowCounts(db, clock),
            sqlite.SqliteJobLease(db, clock),
            SqliteIncidentStore(db),
        )
        await db.close()
        return
    async with dynamodb() as client:
        table = await new_table(client)
        args: tuple[Any, str, FakeClock] = (client, table, clock)
        yield Stores(
            dynamo.DynamoAuditLog(*args),
            dynamo.DynamoVersionStore(*args),
            dynamo.DynamoNonceStore(*args),
            dynamo.DynamoOwnerOverrides(*args),
            dynamo.DynamoRowCounts(*args),
            dynamo.DynamoJobLease(*args),
            DynamoIncidentStore(*args),
        )


# --- audit ---------------------------------------------------------------------------------


async def test_audit_records_come_back_newest_first_with_every_field(
    stores: Stores, clock: FakeClock
) -> None:
    first = AuditRecord(
        who="ops@example.com",
        when=clock.now(),
        action="dim_metric.apply",
        payload_hash="ab" * 32,
        outcome="applied",
        version=3,
        counts={"DimMetric": 4},
        duration_sec=0.25,
    )
    second = AuditRecord(
        who="scheduler",
        when=clock.now() + timedelta(minutes=1),
        action="dim_agent.sync",
        payload_hash="cd" * 32,
        outcome="dry_run",
    )
    await stores.audit.append(first)
    await stores.audit.append(second)

    assert await stores.audit.recent() == [second, first]
    assert await stores.audit.recent(limit=1) == [second]


async def test_an_empty_audit_log_lists_nothing(stores: Stores) -> None:
    assert await stores.audit.recent() == []


# --- versions ------------------------------------------------------------------------------


async def test_a_newer_version_is_stored_and_a_stale_or_equal_one_refused(
    stores: Stores, clock: FakeClock
) -> None:
    v2 = AppliedVersion("dim_metric:2026-11", 2, '{"CALLS": 60}', clock.now())
    assert await stores.versions.put(v2) is True
    assert (
        await stores.versions.put(AppliedVersion("dim_metric:2026-11", 1, "{}", clock.now()))
        is False
    )
    assert (
        await stores.versions.put(AppliedVersion("dim_metric:2026-11", 2, "{}", clock.now()))
        is False
    )
    assert await stores.versions.get("dim_metric:2026-11") == v2

    v3 = AppliedVersion("dim_metric:2026-11", 3, '{"CALLS": 70}', clock.now())
    assert await stores.versions.put(v3) is True
    assert await stores.versions.get("dim_metric:2026-11") == v3
    assert await stores.versions.get("dim_shift") is None


async def test_every_stored_document_is_listed_by_prefix(stores: Stores, clock: FakeClock) -> None:
    for document in ("dim_metric:2026-12", "dim_shift", "dim_metric:2026-11"):
        await stores.versions.put(AppliedVersion(document, 1, "{}", clock.now()))

    metrics = await stores.versions.get_all("dim_metric:")
    everything = await stores.versions.get_all()

    assert [v.document for v in metrics] == ["dim_metric:2026-11", "dim_metric:2026-12"]
    assert [v.document for v in everything] == [
        "dim_metric:2026-11",
        "dim_metric:2026-12",
        "dim_shift",
    ]


async def test_racing_writers_of_one_version_store_it_once(
    stores: Stores, clock: FakeClock
) -> None:
    applied = AppliedVersion("dim_shift", 7, "{}", clock.now())
    results = await asyncio.gather(*(stores.versions.put(applied) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await stores.versions.history("dim_shift") == [applied]


async def test_racing_writers_of_different_versions_leave_the_newest_and_keep_each_accepted(
    stores: Stores, clock: FakeClock
) -> None:
    candidates = [AppliedVersion("dim_shift", n, f'{{"v": {n}}}', clock.now()) for n in range(1, 9)]
    accepted = await asyncio.gather(*(stores.versions.put(v) for v in reversed(candidates)))

    kept = [v for v, ok in zip(reversed(candidates), accepted, strict=True) if ok]
    assert await stores.versions.get("dim_shift") == candidates[-1]
    assert await stores.versions.history("dim_shift") == sorted(kept, key=lambda v: v.version)


async def test_every_applied_version_is_kept_with_who_counts_and_body(
    stores: Stores, clock: FakeClock
) -> None:
    v1 = AppliedVersion(
        "dim_metric:2026-11", 1, '{"CALLS": 60}', clock.now(), "cli:alice", {"rows": 4}
    )
    clock.advance(60)
    v3 = AppliedVersion(
        "dim_metric:2026-11", 3, '{"CALLS": 70}', clock.now(), "admin@10.0.0.5", {"changed": 1}
    )
    clock.advance(60)
    v4 = AppliedVersion(
        "dim_metric:2026-11", 4, '{"CALLS": 60, "v": 4}', clock.now(), "cli:bob", {}, 1
    )
    for applied in (v1, v3, v4):
        assert await stores.versions.put(applied) is True
    stale = AppliedVersion("dim_metric:2026-11", 2, "{}", clock.now())
    assert await stores.versions.put(stale) is False  # and not kept either
    assert await stores.versions.put(AppliedVersion("dim_metric:2026-12", 1, "{}", clock.now()))

    assert await stores.versions.history("dim_metric:2026-11") == [v1, v3, v4]
    assert await stores.versions.get("dim_metric:2026-11") == v4
    assert await stores.versions.get("dim_metric:2026-11", 1) == v1
    assert await stores.versions.get("dim_metric:2026-11", 3) == v3
    assert await stores.versions.get("dim_metric:2026-11", 2) is None
    assert await stores.versions.get("dim_shift", 1) is None
    assert await stores.versions.history("dim_shift") == []
    assert [v.version for v in await stores.versions.get_all("dim_metric:")] == [4, 1]


async def test_a_restored_version_is_newest_and_then_overtaken_without_its_mark(
    stores: Stores, clock: FakeClock
) -> None:
    restored = AppliedVersion("dim_shift", 2, "{}", clock.now(), "cli:alice", {}, 1)
    after = AppliedVersion("dim_shift", 3, "{}", clock.now(), "cli:alice", {"rows": 3})
    await stores.versions.put(AppliedVersion("dim_shift", 1, "{}", clock.now()))
    await stores.versions.put(restored)
    assert await stores.versions.get("dim_shift") == restored

    await stores.versions.put(after)

    assert await stores.versions.get("dim_shift") == after
    assert [v.restored_from for v in await stores.versions.history("dim_shift")] == [None, 1, None]


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
async def test_a_version_applied_before_history_was_kept_is_its_first_entry(
    kind: str, tmp_path: Path, clock: FakeClock
) -> None:
    old = AppliedVersion("dim_shift", 2, '{"version": 2}', clock.now())
    new = AppliedVersion("dim_shift", 3, '{"version": 3}', clock.now(), "cli:alice", {"rows": 3})
    async with _written_by_the_previous_release(kind, old, tmp_path, clock) as versions:
        assert await versions.history("dim_shift") == [old]
        assert await versions.get("dim_shift", 2) == old
        assert await versions.put(new) is True
        assert await versions.history("dim_shift") == [old, new]
        assert await versions.get("dim_shift", 2) == old


@asynccontextmanager
async def _written_by_the_previous_release(
    kind: str, applied: AppliedVersion, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[VersionStore]:
    """A store holding `applied` as the previous release wrote it: the newest body only."""
    if kind == "sqlite":
        path = tmp_path / "control.sqlite"
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "CREATE TABLE versions (document TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                " body TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            conn.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?)",
                (applied.document, applied.version, applied.body, applied.applied_at.isoformat()),
            )
        db = sqlite.open_control_db(path)
        yield sqlite.SqliteVersionStore(db, clock)
        await db.close()
        return
    async with dynamodb() as client:
        table = await new_table(client)
        await client.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"{dynamo.VERSION_PREFIX}{applied.document}"},
                "document": {"S": applied.document},
                "version": {"N": str(applied.version)},
                "body": {"S": applied.body},
                "applied_at": {"S": applied.applied_at.isoformat()},
            },
        )
        yield dynamo.DynamoVersionStore(client, table, clock)


# --- nonces --------------------------------------------------------------------------------


async def test_a_nonce_is_accepted_once_within_its_ttl_and_again_after(
    stores: Stores, clock: FakeClock
) -> None:
    ttl = timedelta(seconds=300)
    assert await stores.nonces.remember("n-1", ttl) is True
    assert await stores.nonces.remember("n-1", ttl) is False
    assert await stores.nonces.remember("n-2", ttl) is True
    clock.advance(299)
    assert await stores.nonces.remember("n-1", ttl) is False
    clock.advance(3)
    assert await stores.nonces.remember("n-1", ttl) is True


# --- owner overrides -----------------------------------------------------------------------


async def test_owner_overrides_are_set_read_listed_and_removed(stores: Stores) -> None:
    assert await stores.owners.get("owner:12") is None
    await stores.owners.set("owner:12", "agent-7")
    await stores.owners.set("lead@example.com", "agent-9")
    await stores.owners.set("owner:12", "agent-8")

    assert await stores.owners.get("owner:12") == "agent-8"
    assert await stores.owners.get_all() == {"owner:12": "agent-8", "lead@example.com": "agent-9"}

    await stores.owners.set("owner:12", None)
    assert await stores.owners.get("owner:12") is None
    assert await stores.owners.get_all() == {"lead@example.com": "agent-9"}


# --- row counts ----------------------------------------------------------------------------


async def test_row_counts_add_up_across_concurrent_writers_and_reset(stores: Stores) -> None:
    assert await stores.row_counts.get_all() == {}
    await asyncio.gather(*(stores.row_counts.add("FactEvent", 10) for _ in range(20)))
    await stores.row_counts.add("DimAgent", 5)
    assert await stores.row_counts.get_all() == {"FactEvent": 200, "DimAgent": 5}

    await stores.row_counts.set("DimAgent", 3)
    assert await stores.row_counts.get_all() == {"FactEvent": 200, "DimAgent": 3}


# --- job leases ----------------------------------------------------------------------------


async def test_one_owner_holds_a_job_lease_until_it_expires(
    stores: Stores, clock: FakeClock
) -> None:
    ttl = timedelta(seconds=60)
    assert await stores.leases.acquire("dim_agent.sync", "replica-a", ttl) is True
    assert await stores.leases.acquire("dim_agent.sync", "replica-b", ttl) is False
    assert await stores.leases.acquire("dim_date.extend", "replica-b", ttl) is True
    assert await stores.leases.acquire("dim_agent.sync", "replica-a", ttl) is True  # re-entrant

    clock.advance(61)
    assert await stores.leases.acquire("dim_agent.sync", "replica-b", ttl) is True
    assert await stores.leases.renew("dim_agent.sync", "replica-a", ttl) is False


async def test_renewal_keeps_a_lease_and_release_frees_it_for_others(
    stores: Stores, clock: FakeClock
) -> None:
    ttl = timedelta(seconds=60)
    assert await stores.leases.acquire("job", "replica-a", ttl)
    clock.advance(50)
    assert await stores.leases.renew("job", "replica-a", ttl) is True
    clock.advance(50)
    assert await stores.leases.acquire("job", "replica-b", ttl) is False

    await stores.leases.release("job", "replica-b")  # not b's: nothing happens
    assert await stores.leases.acquire("job", "replica-b", ttl) is False
    await stores.leases.release("job", "replica-a")
    assert await stores.leases.acquire("job", "replica-b", ttl) is True


async def test_renewing_a_lease_never_held_fails(stores: Stores) -> None:
    assert await stores.leases.renew("job", "replica-a", timedelta(seconds=60)) is False


async def test_of_racing_replicas_exactly_one_gets_the_lease(stores: Stores) -> None:
    ttl = timedelta(seconds=60)
    won = await asyncio.gather(*(stores.leases.acquire("job", f"r{i}", ttl) for i in range(8)))
    assert won.count(True) == 1


async def test_a_missing_control_table_is_named_with_the_command_that_creates_it(
    clock: FakeClock,
) -> None:
    async with dynamodb() as client:
        present = dynamo.DynamoAuditLog(client, await new_table(client), clock)
        missing = dynamo.DynamoAuditLog(client, "pulse-control-never-created", clock)

        await present.ping()
        with pytest.raises(
            Exception, match=r"'pulse-control-never-created' not found \(run `pulse infra create`\)"
        ):
            await missing.ping()


# --- incidents -----------------------------------------------------------------------------

RULES = IncidentRules(threshold=3, resolve_after=timedelta(minutes=10))


async def test_an_incident_opens_at_its_threshold_and_is_listed_with_count_and_sample(
    stores: Stores, clock: FakeClock
) -> None:
    first = clock.now()
    for n in range(2):
        opened = await incidents.record(
            stores.incidents, "powerbi:429", 1, f"throttled {n}", clock.now(), RULES
        )
        assert opened is None
        clock.advance(30)
    assert await stores.incidents.recent() == []  # pending: not shown

    opened = await incidents.record(
        stores.incidents, "powerbi:429", 1, "throttled 2", clock.now(), RULES
    )

    assert opened is not None and opened.change is Change.OPENED
    (listed,) = await stores.incidents.recent()
    assert listed == opened.incident
    assert (listed.count, listed.first_seen, listed.last_seen) == (3, first, clock.now())
    assert listed.sample == "throttled 2" and listed.state is State.OPEN
    assert await stores.incidents.get(listed.id) == listed
    assert await stores.incidents.open() == [listed]


async def test_replicas_racing_on_one_signature_open_one_incident_and_count_every_failure(
    stores: Stores, clock: FakeClock
) -> None:
    results = await asyncio.gather(
        *(
            incidents.record(stores.incidents, "dynamodb:throttled", 1, "x", clock.now(), RULES)
            for _ in range(8)
        )
    )

    assert [r.change for r in results if r is not None] == [Change.OPENED]
    (listed,) = await stores.incidents.recent()
    assert listed.count == 8


async def test_of_replicas_racing_to_resolve_one_is_told(stores: Stores, clock: FakeClock) -> None:
    await incidents.record(stores.incidents, "fabric:timeout", 3, "x", clock.now(), RULES)
    clock.advance(601)

    results = await asyncio.gather(
        *(incidents.sweep(stores.incidents, clock.now(), RULES) for _ in range(5))
    )

    assert sum(len(r) for r in results) == 1
    assert await stores.incidents.open() == []
    (listed,) = await stores.incidents.recent()
    assert (listed.state, listed.resolved_by) == (State.RESOLVED, "quiet")


async def test_a_head_is_written_only_over_the_version_read(
    stores: Stores, clock: FakeClock
) -> None:
    await incidents.record(stores.incidents, "hubspot-crm:401", 3, "x", clock.now(), RULES)
    head, version = await stores.incidents.head("hubspot-crm:401")
    assert head is not None and version > 0
    assert await stores.incidents.head("never:seen") == (None, 0)

    assert await stores.incidents.save(incidents.resolved(head, clock.now(), "a"), version)
    assert not await stores.incidents.save(incidents.resolved(head, clock.now(), "b"), version)
    assert not await stores.incidents.save(head, 0)  # a head exists: "none yet" is stale
    after, _ = await stores.incidents.head("hubspot-crm:401")
    assert after is not None and after.resolved_by == "a"


async def test_an_acked_incident_keeps_who_and_an_older_one_is_acked_by_id(
    stores: Stores, clock: FakeClock
) -> None:
    await incidents.record(stores.incidents, "powerbi:5xx", 3, "old", clock.now(), RULES)
    clock.advance(601)
    await incidents.sweep(stores.incidents, clock.now(), RULES)
    clock.advance(60)
    await incidents.record(stores.incidents, "powerbi:5xx", 3, "new", clock.now(), RULES)
    newer, older = await stores.incidents.recent()
    assert (newer.sample, older.sample) == ("new", "old")

    acked, told = await incidents.acknowledge(stores.incidents, older.id, "alice", clock.now())
    assert told is None and acked.acked_by == "alice"
    _, told = await incidents.acknowledge(
        stores.incidents, newer.id, "bob", clock.now(), resolve_it=True
    )

    assert told is not None and told.change is Change.RESOLVED
    newer, older = await stores.incidents.recent()
    assert (older.acked_by, older.state) == ("alice", State.RESOLVED)
    assert (newer.acked_by, newer.state, newer.resolved_by) == (
        "bob",
        State.RESOLVED,
        "operator:bob",
    )
    with pytest.raises(incidents.UnknownIncident):
        await incidents.acknowledge(stores.incidents, "no-such-id", "bob", clock.now())


async def test_the_last_request_of_each_source_only_moves_forward(
    stores: Stores, clock: FakeClock
) -> None:
    assert await stores.incidents.last_seen() == {}
    later = clock.now() + timedelta(minutes=5)
    await stores.incidents.saw("aloware", later)
    await stores.incidents.saw("aloware", clock.now())  # an older one, flushed late
    await stores.incidents.saw("hubspot", clock.now())

    assert await stores.incidents.last_seen() == {"aloware": later, "hubspot": clock.now()}

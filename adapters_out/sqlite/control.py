"""The control-plane stores on SQLite (one file under DATA_DIR): the embedded twins of DynamoDB's."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from pulse.adapters_out.sqlite.db import Database
from pulse.adapters_out.sqlite.incidents import SCHEMA as INCIDENTS_SCHEMA
from pulse.ports.clock import Clock
from pulse.ports.control import AppliedVersion, AuditRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    who          TEXT NOT NULL,
    at           TEXT NOT NULL,
    action       TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    version      INTEGER,
    counts       TEXT NOT NULL,
    duration_sec REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    document   TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
-- Every applied version's body, so any can be applied again; `versions` names the newest.
CREATE TABLE IF NOT EXISTS version_history (
    document      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    applied_at    TEXT NOT NULL,
    applied_by    TEXT NOT NULL DEFAULT '',
    counts        TEXT NOT NULL DEFAULT '{}', -- JSON, in the order the apply reported them
    restored_from INTEGER,
    PRIMARY KEY (document, version)
);
-- A file written before the history was kept: its applied versions become their first entry.
INSERT OR IGNORE INTO version_history (document, version, body, applied_at)
    SELECT document, version, body, applied_at FROM versions;
CREATE TABLE IF NOT EXISTS nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
CREATE TABLE IF NOT EXISTS owner_overrides (
    owner    TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS row_counts (
    tbl  TEXT PRIMARY KEY,
    rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS job_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until REAL NOT NULL
);
"""


def open_control_db(path: Path) -> Database:
    """The one control database the stores below share (the container closes it)."""
    return Database(path, SCHEMA + INCIDENTS_SCHEMA)


class _Store:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock


class SqliteAuditLog(_Store):
    async def append(self, record: AuditRecord) -> None:
        row = (
            record.who,
            record.when.isoformat(),
            record.action,
            record.payload_hash,
            record.outcome,
            record.version,
            json.dumps(dict(record.counts), sort_keys=True),
            record.duration_sec,
        )

        def append(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                conn.execute(
                    "INSERT INTO audit (who, at, action, payload_hash, outcome, version, counts,"
                    " duration_sec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self._db.run(append)

    async def recent(self, limit: int = 50) -> list[AuditRecord]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT who, at, action, payload_hash, outcome, version, counts, duration_sec"
                " FROM audit ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            AuditRecord(
                who=who,
                when=datetime.fromisoformat(at),
                action=action,
                payload_hash=payload_hash,
                outcome=outcome,
                version=version,
                counts=json.loads(counts),
                duration_sec=duration,
            )
            for who, at, action, payload_hash, outcome, version, counts, duration in rows
        ]


HISTORY_COLUMNS = (
    "h.document, h.version, h.body, h.applied_at, h.applied_by, h.counts, h.restored_from"
)
NEWEST = (
    f"SELECT {HISTORY_COLUMNS} FROM versions v JOIN version_history h"
    " ON h.document = v.document AND h.version = v.version"
)


class SqliteVersionStore(_Store):
    """`versions` holds the newest version of each document, `version_history` every one."""

    async def get(self, document: str, version: int | None = None) -> AppliedVersion | None:
        params: list[str | int] = [document]
        if version is None:
            sql = f"{NEWEST} WHERE v.document = ?"
        else:
            sql = f"SELECT {HISTORY_COLUMNS} FROM version_history h"
            sql += " WHERE h.document = ? AND h.version = ?"
            params.append(version)
        rows = await self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        return _applied(*rows[0]) if rows else None

    async def put(self, applied: AppliedVersion) -> bool:
        def put(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                cursor = conn.execute(
                    "INSERT INTO versions (document, version, body, applied_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (document) DO UPDATE SET version = excluded.version,"
                    " body = excluded.body, applied_at = excluded.applied_at"
                    " WHERE excluded.version > versions.version",
                    (
                        applied.document,
                        applied.version,
                        applied.body,
                        applied.applied_at.isoformat(),
                    ),
                )
                if cursor.rowcount != 1:
                    return False
                conn.execute(
                    "INSERT INTO version_history (document, version, body, applied_at,"
                    " applied_by, counts, restored_from) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        applied.document,
                        applied.version,
                        applied.body,
                        applied.applied_at.isoformat(),
                        applied.applied_by,
                        json.dumps(dict(applied.counts)),
                        applied.restored_from,
                    ),
                )
                return True

        return await self._db.run(put)

    async def history(self, document: str) -> list[AppliedVersion]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                f"SELECT {HISTORY_COLUMNS} FROM version_history h WHERE h.document = ?"
                " ORDER BY h.version",
                (document,),
            ).fetchall()
        )
        return [_applied(*row) for row in rows]

    async def get_all(self, prefix: str = "") -> list[AppliedVersion]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                f"{NEWEST} WHERE substr(v.document, 1, ?) = ? ORDER BY v.document",
                (len(prefix), prefix),
            ).fetchall()
        )
        return [_applied(*row) for row in rows]


def _applied(
    document: str,
    version: int,
    body: str,
    applied_at: str,
    applied_by: str,
    counts: str,
    restored_from: int | None,
) -> AppliedVersion:
    return AppliedVersion(
        document,
        version,
        body,
        datetime.fromisoformat(applied_at),
        applied_by,
        json.loads(counts),
        restored_from,
    )


class SqliteNonceStore(_Store):
    async def remember(self, nonce: str, ttl: timedelta) -> bool:
        now = self._clock.now().timestamp()

        def remember(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                # Sweeping on every call keeps the table at one TTL's worth of nonces.
                conn.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?, ?)",
                    (nonce, now + ttl.total_seconds()),
                )
                return cursor.rowcount == 1

        return await self._db.run(remember)


class SqliteOwnerOverrides(_Store):
    async def get(self, owner: str) -> str | None:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT agent_id FROM owner_overrides WHERE owner = ?", (owner,)
            ).fetchall()
        )
        return str(rows[0][0]) if rows else None

    async def set(self, owner: str, agent_id: str | None) -> None:
        def set_(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                if agent_id is None:
                    conn.execute("DELETE FROM owner_overrides WHERE owner = ?", (owner,))
                else:
                    conn.execute(
                        "INSERT INTO owner_overrides (owner, agent_id) VALUES (?, ?)"
                        " ON CONFLICT (owner) DO UPDATE SET agent_id = excluded.agent_id",
                        (owner, agent_id),
                    )

        await self._db.run(set_)

    async def get_all(self) -> dict[str, str]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT owner, agent_id FROM owner_overrides").fetchall()
        )
        return dict(rows)


class SqliteRowCounts(_Store):
    async def add(self, table: str, rows: int) -> None:
        await self._write(
            "INSERT INTO row_counts (tbl, rows) VALUES (?, ?)"
            " ON CONFLICT (tbl) DO UPDATE SET rows = rows + excluded.rows",
            table,
            rows,
        )

    async def set(self, table: str, rows: int) -> None:
        await self._write(
            "INSERT INTO row_counts (tbl, rows) VALUES (?, ?)"
            " ON CONFLICT (tbl) DO UPDATE SET rows = excluded.rows",
            table,
            rows,
        )

    async def _write(self, sql: str, table: str, rows: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                conn.execute(sql, (table, rows))

        await self._db.run(write)

    async def get_all(self) -> dict[str, int]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT tbl, rows FROM row_counts").fetchall()
        )
        return dict(rows)


class SqliteJobLease(_Store):
    async def acquire(self, name: str, owner: str, ttl: timedelta) -> bool:
        now = self._clock.now().timestamp()

        def acquire(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                cursor = conn.execute(
                    "INSERT INTO job_leases (name, owner, lease_until) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                    " lease_until = excluded.lease_until"
                    " WHERE job_leases.lease_until < ? OR job_leases.owner = excluded.owner",
                    (name, owner, now + ttl.total_seconds(), now),
                )
                return cursor.rowcount == 1

        return await self._db.run(acquire)

    async def renew(self, name: str, owner: str, ttl: timedelta) -> bool:
        until = self._clock.now().timestamp() + ttl.total_seconds()

        def renew(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                cursor = conn.execute(
                    "UPDATE job_leases SET lease_until = ? WHERE name = ? AND owner = ?",
                    (until, name, owner),
                )
                return cursor.rowcount == 1

        return await self._db.run(renew)

    async def release(self, name: str, owner: str) -> None:
        def release(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                conn.execute("DELETE FROM job_leases WHERE name = ? AND owner = ?", (name, owner))

        await self._db.run(release)

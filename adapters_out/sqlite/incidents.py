"""Incidents and each source's last request on SQLite, in the control database."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from pulse.adapters_out.sqlite.db import Database
from pulse.core.incidents import Incident, State, incident_from_dict

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_heads (
    signature TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    state     TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id        TEXT PRIMARY KEY,
    opened_at TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at);
CREATE TABLE IF NOT EXISTS source_last_seen (
    source TEXT PRIMARY KEY,
    at     REAL NOT NULL
);
"""


def _body(incident: Incident) -> str:
    return json.dumps(incident.as_dict(), sort_keys=True)


class SqliteIncidentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def head(self, signature: str) -> tuple[Incident | None, int]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT body, version FROM incident_heads WHERE signature = ?", (signature,)
            ).fetchall()
        )
        if not rows:
            return None, 0
        body, version = rows[0]
        return incident_from_dict(json.loads(body)), int(version)

    async def save(self, incident: Incident, version: int | None) -> bool:
        body = _body(incident)

        def save(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                if version is not None and not _moved_head(conn, incident, body, version):
                    return False
                if incident.opened_at is not None:
                    conn.execute(
                        "INSERT INTO incidents (id, opened_at, body) VALUES (?, ?, ?)"
                        " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                        (incident.id, incident.opened_at.isoformat(), body),
                    )
                return True

        return await self._db.run(save)

    async def get(self, incident_id: str) -> Incident | None:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT body FROM incidents WHERE id = ?", (incident_id,)
            ).fetchall()
        )
        return incident_from_dict(json.loads(rows[0][0])) if rows else None

    async def recent(self, limit: int = 50) -> list[Incident]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT body FROM incidents ORDER BY opened_at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [incident_from_dict(json.loads(body)) for (body,) in rows]

    async def open(self) -> list[Incident]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT body FROM incident_heads WHERE state = ? ORDER BY signature",
                (State.OPEN.value,),
            ).fetchall()
        )
        return [incident_from_dict(json.loads(body)) for (body,) in rows]

    async def saw(self, source: str, at: datetime) -> None:
        def saw(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                conn.execute(
                    "INSERT INTO source_last_seen (source, at) VALUES (?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET at = excluded.at"
                    " WHERE excluded.at > source_last_seen.at",
                    (source, at.timestamp()),
                )

        await self._db.run(saw)

    async def last_seen(self) -> dict[str, datetime]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT source, at FROM source_last_seen").fetchall()
        )
        return {source: datetime.fromtimestamp(at, UTC) for source, at in rows}


def _moved_head(conn: sqlite3.Connection, incident: Incident, body: str, version: int) -> bool:
    """Put the head over exactly version `version` (0: none yet); True when it moved."""
    if version == 0:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO incident_heads (signature, version, state, body)"
            " VALUES (?, 1, ?, ?)",
            (incident.signature, incident.state.value, body),
        )
    else:
        cursor = conn.execute(
            "UPDATE incident_heads SET version = version + 1, state = ?, body = ?"
            " WHERE signature = ? AND version = ?",
            (incident.state.value, body, incident.signature, version),
        )
    return cursor.rowcount == 1

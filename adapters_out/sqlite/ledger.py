"""The embedded idempotency ledger: claim, commit, release on SQLite (DESIGN §2 "Exactly once")."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from pulse.adapters_out.sqlite.db import Database
from pulse.ports.clock import Clock
from pulse.ports.ledger import Claim

PENDING, DONE = "PENDING", "DONE"
_CHUNK = 500  # keys per IN (…) query, well under SQLite's bound-variable limit

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    pk          TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('PENDING', 'DONE')),
    lease_until REAL,
    claim_token TEXT,
    seen_at     REAL NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX IF NOT EXISTS ledger_expiry ON ledger (expires_at) WHERE state = 'DONE';
"""


class SqliteLedger:
    """Ledger port over SQLite; each call is one transaction, so two claimers never both win."""

    def __init__(self, path: Path, clock: Clock, ttl: timedelta = timedelta(days=14)) -> None:
        self.db = Database(path, SCHEMA)
        self.clock = clock
        self.ttl = ttl
        # Keys DONE for good (dimension rows, committed `forever`) never change again: once seen,
        # they are answered from memory, and a batch whose dimensions are all known costs no
        # transaction.
        self._kept: set[str] = set()

    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        token = secrets.token_hex(16)
        unique = list(dict.fromkeys(keys))  # a key given twice is claimed once
        kept = [key for key in unique if key in self._kept]
        wanted = [key for key in unique if key not in self._kept]
        if not wanted:
            return Claim(token=token, claimed=(), done=tuple(kept))
        now = self.clock.now().timestamp()
        lease_until = now + lease.total_seconds()

        def claim(conn: sqlite3.Connection) -> Claim:
            with self.db.transaction(conn):
                existing = _states(conn, wanted)
                claimed, done, busy = [], list(kept), []
                for key in wanted:
                    state, held_until, expires_at = existing.get(key, (None, None, None))
                    if state == DONE:
                        done.append(key)
                        if expires_at is None:
                            self._kept.add(key)
                    elif state == PENDING and held_until is not None and held_until >= now:
                        busy.append(key)
                    else:  # absent, or PENDING under a lease that ran out: take it over
                        claimed.append(key)
                conn.executemany(
                    "INSERT INTO ledger (pk, state, lease_until, claim_token, seen_at)"
                    " VALUES (?, 'PENDING', ?, ?, ?)"
                    " ON CONFLICT (pk) DO UPDATE SET state = 'PENDING',"
                    " lease_until = excluded.lease_until, claim_token = excluded.claim_token",
                    [(key, lease_until, token, now) for key in claimed],
                )
            return Claim(token=token, claimed=tuple(claimed), done=tuple(done), busy=tuple(busy))

        return await self.db.run(claim)

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        expires_at = None if forever else int((self.clock.now() + self.ttl).timestamp())
        rows = [(expires_at, key, claim.token) for key in _ours(claim, keys)]
        if not rows:
            return

        def commit(conn: sqlite3.Connection) -> None:
            # Only rows this claim still holds: after a takeover the key belongs to the new claimer.
            with self.db.transaction(conn):
                conn.executemany(
                    "UPDATE ledger SET state = 'DONE', lease_until = NULL, expires_at = ?"
                    " WHERE pk = ? AND claim_token = ? AND state = 'PENDING'",
                    rows,
                )

        await self.db.run(commit)
        if forever:  # the rows are in the sink (commit follows the push): never claim them again
            self._kept.update(key for _, key, _ in rows)

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        rows = [(key, claim.token) for key in _ours(claim, keys)]
        if not rows:
            return

        def release(conn: sqlite3.Connection) -> None:
            with self.db.transaction(conn):
                conn.executemany(
                    "DELETE FROM ledger WHERE pk = ? AND claim_token = ? AND state = 'PENDING'",
                    rows,
                )

        await self.db.run(release)

    async def done_among(self, keys: Sequence[str]) -> frozenset[str]:
        wanted = list(dict.fromkeys(keys))

        def read(conn: sqlite3.Connection) -> frozenset[str]:
            states = _states(conn, wanted)
            return frozenset(key for key, (state, _, _) in states.items() if state == DONE)

        return await self.db.run(read)

    async def purge_expired(self) -> int:
        now = self.clock.now().timestamp()

        def purge(conn: sqlite3.Connection) -> int:
            with self.db.transaction(conn):
                cursor = conn.execute(
                    "DELETE FROM ledger WHERE state = 'DONE' AND expires_at < ?", (now,)
                )
                return cursor.rowcount

        return await self.db.run(purge)

    async def ping(self) -> None:
        await self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self.db.close()


def _ours(claim: Claim, keys: Sequence[str] | None) -> list[str]:
    return list(dict.fromkeys(claim.claimed if keys is None else keys))


def _states(
    conn: sqlite3.Connection, keys: Sequence[str]
) -> dict[str, tuple[str, float | None, int | None]]:
    found: dict[str, tuple[str, float | None, int | None]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for pk, state, lease_until, expires_at in conn.execute(
            f"SELECT pk, state, lease_until, expires_at FROM ledger WHERE pk IN ({marks})", chunk
        ):
            found[pk] = (state, lease_until, expires_at)
    return found

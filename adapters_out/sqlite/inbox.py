"""The embedded durable inbox and its dead letters, in one SQLite (WAL) file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulse.adapters_out.sqlite.db import Database
from pulse.core.dead_letters import DeadLetterFilter
from pulse.core.model import Delivery, IngestEnvelope
from pulse.ports.clock import Clock
from pulse.ports.inbox import DeadLetter, InboxStats

POLL_SEC = 0.1  # another process (a CLI replay) may write; its rows are seen within this
CHECKPOINT_RETRY_SEC = 1.0  # a WAL checkpoint another process's read made busy is tried again
# Acks within this share one checkpoint: under load it ran after nearly every batch's ack, on
# the thread the edge's puts wait for. Acked bodies stay in the WAL at most this much longer.
CHECKPOINT_DELAY_SEC = 0.25

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    headers     TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    enqueued_at REAL    NOT NULL,
    visible_at  REAL    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    receipt     TEXT
);
CREATE INDEX IF NOT EXISTS inbox_visible ON inbox (visible_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    letter_key  TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    source      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    reason      TEXT NOT NULL,
    dead_at     TEXT NOT NULL,
    attempts    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_request ON dead_letters (request_id);
"""

_INSERT = (
    "INSERT INTO inbox (request_id, source, received_at, headers, body, enqueued_at, visible_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# A flush inserts its rows in statements of 64, 32, …, 1 rows: one statement step releases and
# retakes the GIL once, where `executemany` does so per row, and each retake contends with the
# loop's thread (which releases it on every socket call). Seven shapes: all stay prepared.
_WIDEST = 64
_INSERT_ROWS = {
    1 << k: _INSERT + ", (?, ?, ?, ?, ?, ?, ?)" * ((1 << k) - 1)
    for k in range(_WIDEST.bit_length())
}


def insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """`rows` into the inbox, in few statements (see `_INSERT_ROWS`)."""
    start = 0
    while start < len(rows):
        left = len(rows) - start
        n = _WIDEST if left >= _WIDEST else 1 << (left.bit_length() - 1)
        conn.execute(_INSERT_ROWS[n], [value for row in rows[start : start + n] for value in row])
        start += n


def _iso(instant: datetime) -> str:
    """ISO-8601; aware instants are stored in UTC so they sort and round-trip as UTC."""
    if instant.tzinfo is None or instant.tzinfo is UTC:
        return instant.isoformat()
    return instant.astimezone(UTC).isoformat()


def _envelope_columns(envelope: IngestEnvelope) -> tuple[str, str, str, str, bytes]:
    return (
        envelope.request_id,
        envelope.source,
        _iso(envelope.received_at),
        json.dumps(envelope.headers),
        bytes(envelope.body),
    )


def _envelope(
    request_id: str, source: str, received_at: str, headers: str, body: bytes
) -> IngestEnvelope:
    return IngestEnvelope(
        request_id=request_id,
        source=source,
        received_at=datetime.fromisoformat(received_at),
        body=bytes(body),
        headers=json.loads(headers),
    )


def _row_id(receipt: str) -> int | None:
    head, _, token = receipt.partition(":")
    return int(head) if head.isdigit() and token else None


@dataclass(slots=True)
class _PendingPut:
    row: tuple[object, ...]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]


class SqliteInbox:
    """Inbox port over SQLite: group-committed puts, visibility-timeout takes, unique receipts."""

    def __init__(
        self, path: Path, clock: Clock, visibility: timedelta = timedelta(seconds=60)
    ) -> None:
        self.db = Database(path, SCHEMA, secure_delete=True)
        self.clock = clock
        self._checkpoint_queued = False  # these two are touched on the loop only
        self._deleted_since_queued = False
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self.visibility = visibility
        self._pending: list[_PendingPut] = []
        self._pending_lock = threading.Lock()  # shared by the loop (put) and the db thread (flush)
        self._flush_queued = False
        self._unsettled: set[asyncio.Future[None]] = set()  # puts not yet told their outcome
        self._closing = False
        # Replaced (never cleared) on every arrival, so each waiter sees the arrival after its look.
        self._arrived = asyncio.Event()

    # --- put: group commit ------------------------------------------------------------------

    async def put(self, envelope: IngestEnvelope) -> None:
        if self._closing:
            raise RuntimeError(f"inbox {self.db.path} is closed")
        loop = asyncio.get_running_loop()
        now = self.clock.now().timestamp()
        pending = _PendingPut((*_envelope_columns(envelope), now, now), loop, loop.create_future())
        self._unsettled.add(pending.done)
        with self._pending_lock:
            self._pending.append(pending)
            start_flush = not self._flush_queued
            self._flush_queued = True
        if start_flush:
            self.db.submit(self._flush)
        try:
            await pending.done  # then stored, and the waiting takes were told (`_settled`)
        finally:
            self._unsettled.discard(pending.done)

    def _flush(self, conn: sqlite3.Connection) -> None:
        """On the db thread: commit everything pending now in one transaction (one fsync).

        Puts arriving during the commit wait for the next flush, queued behind the takes and
        acks already waiting, so a steady stream of puts cannot starve the workers."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
        error: BaseException | None = None
        try:
            with self.db.transaction(conn):
                insert_rows(conn, [p.row for p in batch])
        except BaseException as exc:  # every waiting put must hear about it
            error = exc
        # One wake-up per loop for the whole batch, not one self-pipe write per put.
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for p in batch:
            by_loop.setdefault(p.loop, []).append(p.done)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that caller's loop is already closed
                loop.call_soon_threadsafe(self._settled, futures, error)
        with self._pending_lock:
            self._flush_queued = bool(self._pending)
            if self._flush_queued:
                self.db.submit(self._flush)

    def _settled(self, futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
        """On the loop: the puts of one commit hear its outcome; takes waiting hear once."""
        _settle_all(futures, error)
        if error is None:
            self.announce_arrival()

    def announce_arrival(self) -> None:
        """Wake every waiting take: new rows are visible."""
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    # --- take / ack / retry -----------------------------------------------------------------

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait)
        while True:
            arrival = self._arrived
            deliveries = await self.db.run(lambda conn: self._take(conn, max_items))
            remaining = deadline - loop.time()
            if deliveries or remaining <= 0 or max_items <= 0:
                return deliveries
            try:
                await asyncio.wait_for(arrival.wait(), timeout=min(remaining, POLL_SEC))
            except TimeoutError:
                pass

    def _take(self, conn: sqlite3.Connection, max_items: int) -> list[Delivery]:
        if max_items <= 0:
            return []
        now = self.clock.now().timestamp()
        # A read first: an idle poll must not take the write lock the puts are waiting for.
        if (
            conn.execute("SELECT 1 FROM inbox WHERE visible_at <= ? LIMIT 1", (now,)).fetchone()
            is None
        ):
            return []
        invisible_until = now + self.visibility.total_seconds()
        deliveries: list[Delivery] = []
        with self.db.transaction(conn, synced=False):  # lost to a power cut: delivered again
            rows = conn.execute(
                "SELECT id, request_id, source, received_at, headers, body, attempts FROM inbox"
                " WHERE visible_at <= ? ORDER BY id LIMIT ?",
                (now, max_items),
            ).fetchall()
            for row_id, request_id, source, received_at, headers, body, attempts in rows:
                # A fresh token per delivery: a stale receipt can never settle a later delivery.
                receipt = f"{row_id}:{secrets.token_hex(8)}"
                conn.execute(
                    "UPDATE inbox SET visible_at = ?, attempts = ?, receipt = ? WHERE id = ?",
                    (invisible_until, attempts + 1, receipt, row_id),
                )
                envelope = _envelope(request_id, source, received_at, headers, body)
                deliveries.append(Delivery(envelope, receipt, attempts + 1))
        return deliveries

    async def ack(self, receipts: Sequence[str]) -> None:
        pairs = [(rid, r) for r in receipts if (rid := _row_id(r)) is not None]
        if not pairs:
            return

        def delete(conn: sqlite3.Connection) -> None:
            # Unsynced: undone only by a power cut, and then redelivered and acked as already
            # counted (the ledger's commit is synced before any ack).
            with self.db.transaction(conn, synced=False):
                conn.executemany("DELETE FROM inbox WHERE id = ? AND receipt = ?", pairs)

        await self.db.run(delete)
        self.forget_deleted()

    def forget_deleted(self) -> None:
        """Queue one WAL checkpoint behind the deletes already queued: acked (and replayed or
        purged) raw bodies are zeroed in the file (secure_delete) and gone from the WAL.
        Acks queued before it runs share it, so under load it costs one per burst, not per ack."""
        if self._checkpoint_queued:
            # It may already be running: a delete that lands after it needs one more.
            self._deleted_since_queued = True
            return
        if self.db.closed:
            return
        self._checkpoint_queued = True
        loop = asyncio.get_running_loop()

        def checkpoint(conn: sqlite3.Connection) -> None:
            done = False
            try:
                done = self.db.checkpoint(conn)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self._checkpoint_done, done)

        def queue() -> None:
            self._checkpoint_timer = None
            if self.db.closed:
                self._checkpoint_queued = False
            else:
                self.db.submit(checkpoint)

        self._checkpoint_timer = loop.call_later(CHECKPOINT_DELAY_SEC, queue)

    def _checkpoint_done(self, done: bool) -> None:
        self._checkpoint_queued = False
        if not done:  # another process was reading: try again shortly, even if no ack comes
            asyncio.get_running_loop().call_later(CHECKPOINT_RETRY_SEC, self.forget_deleted)
        elif self._deleted_since_queued:
            self._deleted_since_queued = False
            self.forget_deleted()

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        await self._hide(receipts, delay, "visible_at = ?, receipt = NULL")  # given back

    async def extend(self, receipts: Sequence[str], hidden_for: timedelta) -> None:
        await self._hide(receipts, hidden_for, "visible_at = ?")  # still held: receipt kept

    async def _hide(self, receipts: Sequence[str], span: timedelta, assignments: str) -> None:
        visible_at = self.clock.now().timestamp() + max(0.0, span.total_seconds())
        rows = [(visible_at, rid, r) for r in receipts if (rid := _row_id(r)) is not None]
        if not rows:
            return
        update = f"UPDATE inbox SET {assignments} WHERE id = ? AND receipt = ?"

        def hide(conn: sqlite3.Connection) -> None:
            with self.db.transaction(conn):
                conn.executemany(update, rows)

        await self.db.run(hide)

    # --- health -----------------------------------------------------------------------------

    async def stats(self) -> InboxStats:
        def read(conn: sqlite3.Connection) -> tuple[int, float | None, int]:
            depth, oldest = conn.execute("SELECT COUNT(*), MIN(enqueued_at) FROM inbox").fetchone()
            (dead,) = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
            return depth, oldest, dead

        depth, oldest, dead = await self.db.run(read)
        age = max(0.0, self.clock.now().timestamp() - oldest) if oldest is not None else 0.0
        return InboxStats(depth=depth, oldest_age_sec=age, dead_letters=dead)

    async def ping(self) -> None:
        await self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Refuse new puts, let every accepted put commit, then close the store."""
        self._closing = True
        await asyncio.gather(*self._unsettled, return_exceptions=True)
        if self._checkpoint_timer is not None:  # acked bodies leave the WAL before we go
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
            with contextlib.suppress(Exception):
                await self.db.run(self.db.checkpoint)
            self._checkpoint_queued = False
        await self.db.close()

    # --- for the dead letters sharing this file ---------------------------------------------

    def requeue(self, conn: sqlite3.Connection, envelopes: Sequence[IngestEnvelope]) -> None:
        """Enqueue `envelopes` as new, visible rows inside the caller's transaction on `conn`
        (then `announce_arrival` once it committed)."""
        now = self.clock.now().timestamp()
        insert_rows(conn, [(*_envelope_columns(e), now, now) for e in envelopes])


def _settle_all(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class SqliteDeadLetters:
    """DeadLetters port over the inbox's own file, so a replay moves rows in one transaction."""

    def __init__(self, inbox: SqliteInbox) -> None:
        self.inbox = inbox

    async def add(self, delivery: Delivery, reason: str) -> None:
        envelope = delivery.envelope
        row = (
            _letter_key(envelope),
            *_envelope_columns(envelope),
            reason,
            _iso(self.inbox.clock.now()),
            delivery.attempt,
        )
        db = self.inbox.db

        def upsert(conn: sqlite3.Connection) -> None:
            # By envelope identity: a batch that dead-letters, crashes before its ack and runs
            # again must not leave two letters for one envelope; two envelopes that share a
            # caller-chosen X-Request-Id must not overwrite each other.
            with db.transaction(conn):
                conn.execute(
                    "INSERT INTO dead_letters"
                    " (letter_key, request_id, source, received_at, headers, body, reason,"
                    " dead_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (letter_key) DO UPDATE SET reason = excluded.reason,"
                    " dead_at = excluded.dead_at, attempts = excluded.attempts",
                    row,
                )

        await db.run(upsert)

    async def list(
        self, limit: int = 100, where: DeadLetterFilter | None = None, offset: int = 0
    ) -> list[DeadLetter]:
        clause, params = _where(where)

        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                "SELECT request_id, source, received_at, headers, body, reason, dead_at, attempts"
                f" FROM dead_letters{clause} ORDER BY dead_at, request_id LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            ).fetchall()
            return [
                DeadLetter(
                    envelope=_envelope(*row[:5]),
                    reason=row[5],
                    dead_at=datetime.fromisoformat(row[6]),
                    attempts=row[7],
                )
                for row in rows
            ]

        return await self.inbox.db.run(read)

    async def count(self, where: DeadLetterFilter | None = None) -> int:
        clause, params = _where(where)

        def read(conn: sqlite3.Connection) -> int:
            (found,) = conn.execute(f"SELECT COUNT(*) FROM dead_letters{clause}", params).fetchone()
            return int(found)

        return await self.inbox.db.run(read)

    async def replay(
        self, request_ids: Sequence[str] | None = None, where: DeadLetterFilter | None = None
    ) -> int:
        db = self.inbox.db
        clause, params = _where(where, request_ids)

        def move(conn: sqlite3.Connection) -> int:
            with db.transaction(conn):
                rows = conn.execute(
                    "SELECT request_id, source, received_at, headers, body, letter_key"
                    f" FROM dead_letters{clause} ORDER BY dead_at, request_id",
                    params,
                ).fetchall()
                self.inbox.requeue(conn, [_envelope(*row[:5]) for row in rows])
                conn.executemany(
                    "DELETE FROM dead_letters WHERE letter_key = ?", [(row[5],) for row in rows]
                )
                return len(rows)

        moved = await db.run(move)
        if moved:
            self.inbox.announce_arrival()
        return moved

    async def purge(self, dead_before: datetime) -> int:
        clause, params = _where(DeadLetterFilter(until=dead_before))

        def delete(conn: sqlite3.Connection) -> int:
            with self.inbox.db.transaction(conn):
                return conn.execute(f"DELETE FROM dead_letters{clause}", params).rowcount

        purged = await self.inbox.db.run(delete)
        if purged:
            self.inbox.forget_deleted()  # the purged bodies leave the WAL too
        return purged


def _where(
    where: DeadLetterFilter | None, request_ids: Sequence[str] | None = None
) -> tuple[str, tuple[object, ...]]:
    """The filter as SQL. `dead_at` is ISO-8601 in UTC, so text order is time order."""
    terms: list[str] = []
    params: list[object] = []
    if where is not None:
        for term, value in (
            ("source = ?", where.source),
            ("instr(lower(reason), ?) > 0", where.reason and where.reason.lower()),
            ("dead_at >= ?", where.since and _iso(where.since)),
            ("dead_at < ?", where.until and _iso(where.until)),
        ):
            if value is not None:
                terms.append(term)
                params.append(value)
    if request_ids is not None:
        wanted = list(dict.fromkeys(request_ids))
        terms.append(f"request_id IN ({', '.join('?' * len(wanted))})" if wanted else "0")
        params.extend(wanted)
    return (" WHERE " + " AND ".join(terms) if terms else ""), tuple(params)


def _letter_key(envelope: IngestEnvelope) -> str:
    digest = hashlib.sha256()
    for part in (envelope.request_id, envelope.source, _iso(envelope.received_at)):
        digest.update(part.encode() + b"\0")
    digest.update(envelope.body)
    return digest.hexdigest()

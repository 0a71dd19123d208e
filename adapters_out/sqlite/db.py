"""One durable SQLite connection per store, owned by its own thread and awaited from the loop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS = (
    5_000  # a CLI replay or `pulse report` in another process may hold the lock briefly
)


def _to_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. SQLite answers a journal-mode change with "database is locked" at once,
    without its busy handler, while another process opens the same new file: wait and retry
    within the busy timeout (two replicas or a CLI starting together)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """`script`'s statements as one write transaction: one commit, so one fsync under
    synchronous=FULL (a statement each committed alone syncs each: a fresh DATA_DIR's four
    schemas took twenty, most of the stores' opening), and a statement that fails leaves
    nothing of the script behind."""
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def private_folder(folder: Path) -> None:
    """DATA_DIR holds raw webhook bodies (lead phone numbers): 0700 when Pulse creates it,
    whatever the umask; a folder the operator made is left as it is."""
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)


def private_file(path: Path, *, create: bool = True) -> None:
    """A database file readable and writable by its owner only (0600), whatever the umask."""
    if create:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    try:
        if path.stat().st_mode & 0o777 != 0o600:
            path.chmod(0o600)
    except FileNotFoundError:
        pass


class Database:
    """A sqlite3 connection that lives on one dedicated thread.

    sqlite3 connections are not shared across threads, and a blocking fsync must never run on
    the event loop, so every use goes through `run` (awaitable) or `submit` (fire and forget),
    both executed in order on the single worker thread.
    """

    def __init__(self, path: Path, schema: str = "", *, secure_delete: bool = False) -> None:
        self.path = path
        self.secure_delete = secure_delete
        self.commits = 0  # write transactions committed; lets tests see group commit batch
        self.checkpoints = 0  # WAL truncations that succeeded
        private_folder(path.parent)
        private_file(path)
        lock = path.with_name(path.name + ".lock")
        self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")
        self._closed = False
        self._conn: sqlite3.Connection = self._executor.submit(self._open, schema).result()

    def _open(self, schema: str) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write transaction holds
        # the write lock from its first statement and never fails on a lock upgrade.
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _to_wal(conn)
        for companion in ("-wal", "-shm"):  # SQLite gives new ones the database's mode
            private_file(self.path.with_name(self.path.name + companion), create=False)
        # FULL: once put/commit returned, a power cut cannot lose the row (WAL + NORMAL could).
        conn.execute("PRAGMA synchronous = FULL")
        # ON: deleted rows (raw bodies hold lead phone numbers) are overwritten with zeros, not
        # left readable in free space. Set either way: builds differ (Debian's defaults to ON).
        conn.execute(f"PRAGMA secure_delete = {'ON' if self.secure_delete else 'OFF'}")
        if schema:
            run_script(conn, schema)
        return conn

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the store's thread and return its result."""
        if self._closed:
            raise RuntimeError(f"sqlite store {self.path} is closed")
        return await asyncio.wrap_future(self._executor.submit(fn, self._conn))

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue `fn(connection)` on the store's thread without waiting for it."""
        if self._closed:
            raise RuntimeError(f"sqlite store {self.path} is closed")
        return self._executor.submit(fn, self._conn)

    @contextmanager
    def transaction(
        self, conn: sqlite3.Connection, *, synced: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction (call on the store's thread): committed whole or not at all.

        `synced=False` commits without its own fsync (WAL + synchronous NORMAL): still safe
        against a crash or kill -9, and the next synced commit's fsync of the same WAL carries
        it to disk; only a power cut before then can undo it. For writes a redo makes right
        (an inbox take or ack: the row is delivered again and the ledger knows it is done)."""
        if not synced:
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._writer_lock():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        finally:
            if not synced:
                conn.execute("PRAGMA synchronous = FULL")
        self.commits += 1

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """Writers of this file in other processes (the extra edge processes, a CLI) queue on
        an flock of `<file>.lock` before they ask SQLite for its write lock: the kernel wakes
        the next one when it is free, where SQLite's busy handler would poll it in sleeps of up
        to 100 ms. Released by the kernel if the process dies."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def checkpoint(self, conn: sqlite3.Connection) -> bool:
        """Copy the WAL into the database and truncate it (call on the store's thread), so
        what a delete overwrote no longer survives in an older WAL frame. Never waits: while
        another process reads, SQLite answers busy and False is returned (the next call tries
        again)."""
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:  # "database is locked": another process writes
            busy = 1
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.checkpoints += 0 if busy else 1
        return not busy

    async def close(self) -> None:
        """Finish queued work, then close the connection and the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Jobs already queued (a group-commit flush) run before this one: the executor is FIFO.
        await asyncio.wrap_future(self._executor.submit(self._conn.close))
        self._executor.shutdown(wait=False)
        os.close(self._lock_fd)

"""The SQLite inbox forgets acked raw bodies: zeroed in the file, gone from the WAL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulse.adapters_out.sqlite.inbox import SqliteInbox
from pulse.core.model import IngestEnvelope
from tests.fakes import FakeClock

PHONE = b"+12025550199"


def envelope(request_id: str, body: bytes) -> IngestEnvelope:
    return IngestEnvelope(request_id, "aloware", datetime(2025, 11, 5, 17, tzinfo=UTC), body, {})


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and needle in p.read_bytes())


async def settled(inbox: SqliteInbox) -> None:
    """Until the checkpoint queued behind the last ack (CHECKPOINT_DELAY_SEC later) has run
    and reported back."""
    for _ in range(300):
        await inbox.db.run(lambda conn: None)
        await asyncio.sleep(0.01)
        if not inbox._checkpoint_queued:
            return
    raise AssertionError("the checkpoint never ran")


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    store = SqliteInbox(tmp_path / "inbox.sqlite", FakeClock())
    yield store
    await store.close()


async def test_an_acked_body_is_in_no_byte_of_the_inbox_files_while_others_wait(
    inbox: SqliteInbox, tmp_path: Path
) -> None:
    # Another row stays on the same page: only secure_delete zeroes the acked one's bytes.
    await inbox.put(envelope("lead", b'{"lead_number": "' + PHONE + b'", "pad": "' + b"x" * 200))
    await inbox.put(envelope("other", b'{"id": 2}'))
    lead, _ = await inbox.take(2, wait=0)
    assert files_holding(tmp_path, PHONE)  # the body is stored until it is acked

    await inbox.ack([lead.receipt])
    await settled(inbox)

    assert files_holding(tmp_path, PHONE) == []
    assert (await inbox.stats()).depth == 1
    assert inbox.db.checkpoints >= 1


async def test_a_checkpoint_made_busy_by_a_reader_is_tried_again_without_another_ack(
    inbox: SqliteInbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pulse.adapters_out.sqlite.inbox.CHECKPOINT_RETRY_SEC", 0.05)
    await inbox.put(envelope("lead", b'{"lead_number": "' + PHONE + b'"}'))
    await inbox.put(envelope("other", b'{"id": 2}'))
    lead, _ = await inbox.take(2, wait=0)
    reader = sqlite3.connect(tmp_path / "inbox.sqlite")  # `pulse dead-letters list`, say
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM inbox").fetchone()

    await inbox.ack([lead.receipt])
    await settled(inbox)
    assert "inbox.sqlite-wal" in files_holding(tmp_path, PHONE)  # the reader pins the WAL
    reader.rollback()
    reader.close()

    for _ in range(100):
        if not files_holding(tmp_path, PHONE):
            break
        await asyncio.sleep(0.02)
    assert files_holding(tmp_path, PHONE) == []


async def test_a_checkpoint_never_waits_on_another_process_holding_the_write_lock(
    inbox: SqliteInbox, tmp_path: Path
) -> None:
    await inbox.put(envelope("other", b'{"id": 2}'))
    writer = sqlite3.connect(tmp_path / "inbox.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # `pulse dead-letters replay` mid-transaction, say
    try:
        started = asyncio.get_running_loop().time()
        done = await inbox.db.run(inbox.db.checkpoint)
        waited = asyncio.get_running_loop().time() - started
    finally:
        writer.rollback()
        writer.close()

    assert done is False
    assert waited < 1.0  # not the 5 s busy timeout
    assert await inbox.db.run(inbox.db.checkpoint) is True

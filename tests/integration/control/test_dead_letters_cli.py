"""`pulse dead-letters list|replay|purge` by filter, as an operator runs them on DATA_DIR."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulse.adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from pulse.core.model import Delivery, IngestEnvelope
from tests.fakes import FakeClock
from tests.integration.control.test_cli import Pulse, pulse  # noqa: F401  (the fixture)

NOW = datetime.now(UTC).replace(microsecond=0)
# (request id, source, reason, days ago): an incident 3 days ago dead-lettered two of them.
LETTERS = (
    ("r-ancient", "aloware", "unparseable: no id", 45),
    ("r-incident-1", "aloware", "powerbi: schema rejected", 3),
    ("r-incident-2", "hubspot", "powerbi: schema rejected", 3),
    ("r-today", "aloware", "unparseable: bad time", 0),
)


def seed(data_dir: Path) -> None:
    async def dead_letter_all() -> None:
        clock = FakeClock(NOW)
        inbox = SqliteInbox(data_dir / "inbox.sqlite", clock)
        store = SqliteDeadLetters(inbox)
        for request_id, source, reason, days_ago in LETTERS:
            clock.current = NOW - timedelta(days=days_ago, hours=1)
            envelope = IngestEnvelope(request_id, source, clock.current, b'{"id": 1}', {})
            await store.add(Delivery(envelope, "receipt", 1), reason)
        await inbox.close()

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(dead_letter_all())


def inbox_ids(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / "inbox.sqlite")
    try:
        return sorted(r for (r,) in conn.execute("SELECT request_id FROM inbox"))
    finally:
        conn.close()


def test_list_shows_only_the_letters_the_filter_names(pulse: Pulse) -> None:  # noqa: F811
    seed(pulse.data_dir)

    run = pulse.run("dead-letters", "list", "--reason", "SCHEMA", "--source", "hubspot")

    assert run.code == 0, run.err
    assert len(run.lines) == 2 and "r-incident-2" in run.lines[0]
    assert run.lines[-1] == "1 of 1 dead letter(s) (source=hubspot reason~SCHEMA)"


def test_replay_of_an_incident_window_previews_then_replays_only_those(
    pulse: Pulse,  # noqa: F811
) -> None:
    seed(pulse.data_dir)
    since = (NOW - timedelta(days=4)).isoformat()
    until = (NOW - timedelta(days=2)).replace(tzinfo=None).isoformat()  # no offset: UTC

    dry = pulse.run("dead-letters", "replay", "--since", since, "--until", until, "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.lines[0].startswith("2 dead letter(s) match since=")
    assert sum("r-incident-" in line for line in dry.lines) == 2
    assert dry.lines[-1] == "dry run: nothing replayed"
    assert inbox_ids(pulse.data_dir) == []

    run = pulse.run("dead-letters", "replay", "--since", since, "--until", until)
    assert run.code == 0, run.err
    assert run.lines[-1] == "replayed 2 envelope(s) into the inbox"
    assert inbox_ids(pulse.data_dir) == ["r-incident-1", "r-incident-2"]
    audit = [(r["action"], r["outcome"]) for r in pulse.audit()]
    assert audit == [("replay_dead_letters", "dry_run"), ("replay_dead_letters", "applied")]


def test_a_window_that_ends_before_it_starts_is_refused(pulse: Pulse) -> None:  # noqa: F811
    seed(pulse.data_dir)

    run = pulse.run("dead-letters", "replay", "--since", "2026-11-02", "--until", "2026-11-01")

    assert run.code == 2
    assert "until" in run.err
    assert pulse.audit() == []


def test_purge_deletes_letters_past_the_retention_and_is_audited(
    pulse: Pulse,  # noqa: F811
) -> None:
    seed(pulse.data_dir)

    dry = pulse.run("dead-letters", "purge", "--dry-run")
    run = pulse.run("dead-letters", "purge")

    assert dry.code == run.code == 0, run.err
    assert dry.lines[0].startswith("purge_dead_letters: dry_run · 1 purged")
    assert run.lines[0].startswith("purge_dead_letters: applied · 1 purged")
    listed = pulse.run("dead-letters", "list")
    assert "r-ancient" not in listed.out
    assert listed.lines[-1].startswith("3 of 3 dead letter(s)")
    assert [r["action"] for r in pulse.audit()] == ["purge_dead_letters"] * 2


def test_a_replay_by_an_unknown_id_exits_2_naming_it_and_replays_nothing(
    pulse: Pulse,  # noqa: F811
) -> None:
    seed(pulse.data_dir)

    run = pulse.run("dead-letters", "replay", "r-today", "nosuchid")

    assert run.code == 2
    assert "no dead letter nosuchid" in run.err and "r-today" not in run.err
    assert inbox_ids(pulse.data_dir) == []
    assert pulse.run("dead-letters", "replay", "r-today").code == 0
    assert inbox_ids(pulse.data_dir) == ["r-today"]

"""Dead letters by filter: the preview, the replay and the retention purge, each audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.scheduler import ControlScheduler, JobBoard
from pulse.bootstrap.container import control_jobs
from pulse.bootstrap.settings import load_settings
from pulse.core import dead_letters
from pulse.core.control import Caller
from pulse.core.dead_letters import DeadLetterFilter, DeadLetterPorts
from pulse.core.errors import ValidationFailed
from pulse.core.model import Delivery, IngestEnvelope
from tests.fakes import FakeAudit, FakeClock, FakeDeadLetters, FakeLeases

START = datetime(2026, 11, 1, 12, tzinfo=UTC)
CLI = Caller("cli:ops", "cli:1")


def letter_ports() -> tuple[DeadLetterPorts, FakeDeadLetters, FakeAudit, FakeClock]:
    clock = FakeClock(START)
    store, audit = FakeDeadLetters(clock), FakeAudit()
    return DeadLetterPorts(store, audit, clock), store, audit, clock


async def kill(
    store: FakeDeadLetters, request_id: str, reason: str, source: str = "aloware"
) -> None:
    envelope = IngestEnvelope(request_id, source, START, b'{"lead_number": "+12025550142"}', {})
    await store.add(Delivery(envelope, f"receipt-{request_id}", 1), reason)


async def test_a_dry_run_replay_previews_how_many_and_which_and_moves_nothing() -> None:
    ports, store, audit, _ = letter_ports()
    await kill(store, "r-1", "unparseable: no id")
    await kill(store, "r-2", "sink rejected: 400", source="hubspot")

    summary = await dead_letters.replay(
        ports, CLI, DeadLetterFilter(source="aloware"), dry_run=True
    )

    assert summary.counts == {"matched": 1, "replayed": 0}
    assert summary.outcome == "dry_run"
    assert summary.changes[0] == "source=aloware"
    assert "r-1" in summary.changes[1] and "unparseable: no id" in summary.changes[1]
    assert not any("+1202" in line for line in summary.changes)  # never a raw body
    assert len(store.letters) == 2
    assert [(r.action, r.outcome, r.who) for r in audit.records] == [
        ("replay_dead_letters", "dry_run", "cli:ops")
    ]


async def test_replaying_an_incident_window_moves_what_died_inside_it_and_is_audited() -> None:
    ports, store, audit, clock = letter_ports()
    await kill(store, "before", "powerbi: schema rejected")
    clock.advance(3600)
    opened = clock.now()
    await kill(store, "during", "powerbi: schema rejected")
    clock.advance(600)
    resolved = clock.now()
    clock.advance(60)
    await kill(store, "after", "powerbi: schema rejected")

    summary = await dead_letters.replay(ports, CLI, DeadLetterFilter(since=opened, until=resolved))

    assert summary.counts == {"matched": 1, "replayed": 1}
    assert [d.envelope.request_id for d in store.replayed] == ["during"]
    assert sorted(d.envelope.request_id for d in store.letters) == ["after", "before"]
    assert audit.records[-1].counts == {"matched": 1, "replayed": 1}
    assert audit.records[-1].outcome == "applied"


async def test_the_purge_deletes_letters_older_than_the_retention_and_counts_them() -> None:
    ports, store, audit, clock = letter_ports()
    await kill(store, "old", "unparseable")
    clock.advance(timedelta(days=29).total_seconds())
    await kill(store, "young", "unparseable")
    clock.advance(timedelta(days=2).total_seconds())

    dry = await dead_letters.purge_expired(ports, CLI, timedelta(days=30), dry_run=True)
    summary = await dead_letters.purge_expired(ports, CLI, timedelta(days=30))
    again = await dead_letters.purge_expired(ports, CLI, timedelta(days=30))

    assert (dry.counts, dry.outcome) == ({"purged": 1}, "dry_run")
    assert (summary.counts, summary.outcome) == ({"purged": 1}, "applied")
    assert (again.counts, again.outcome) == ({"purged": 0}, "unchanged")
    assert [d.envelope.request_id for d in store.letters] == ["young"]
    assert [r.action for r in audit.records] == ["purge_dead_letters"] * 3


def test_a_filter_refuses_a_naive_instant_and_an_empty_window() -> None:
    with pytest.raises(ValidationFailed, match="since"):
        DeadLetterFilter(since=datetime(2026, 11, 1))
    with pytest.raises(ValidationFailed, match="until"):
        DeadLetterFilter(since=START, until=START)


def test_a_reason_filter_matches_text_inside_the_reason_in_any_case() -> None:
    where = DeadLetterFilter(reason="Schema")

    assert where.matches("powerbi", "powerbi: schema rejected", START)
    assert not where.matches("powerbi", "unparseable", START)


async def test_the_nightly_purge_job_runs_under_its_lease_with_the_configured_retention() -> None:
    ports, store, audit, clock = letter_ports()
    await kill(store, "old", "unparseable")
    clock.advance(timedelta(days=7).total_seconds())
    await kill(store, "young", "unparseable")
    clock.current = datetime(2026, 11, 9, 3, 0, 5, tzinfo=UTC)  # the nightly firing
    settings = load_settings(dead_letter_retention_days=7, aloware_auth="none", hubspot_auth="none")
    metrics = Metrics()
    jobs = control_jobs(settings, None, None, ports, metrics)  # type: ignore[arg-type]  # purge needs neither
    leases = FakeLeases()
    scheduler = ControlScheduler(jobs, leases, clock, UTC, JobBoard(metrics), replica="a")

    assert await scheduler.fire("purge_dead_letters") is True

    assert [d.envelope.request_id for d in store.letters] == ["young"]
    assert leases.taken == ["job:purge_dead_letters:2026-11-09T03:00:00+00:00"]
    assert scheduler.board.as_dict()["purge_dead_letters"]["detail"].startswith(
        "purge_dead_letters: applied · 1 purged"
    )
    assert audit.records[-1].who == "scheduler"
    assert metrics.value("dead_letters_purged_total") == 1
    assert metrics.value("job_runs_total", job="purge_dead_letters", outcome="ok") == 1

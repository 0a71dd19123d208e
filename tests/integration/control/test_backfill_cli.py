"""`pulse backfill hubspot` on the embedded defaults (CRM=static lists CRM_FILE): what it
prints, its exit code, the facts and the audit it leaves in DATA_DIR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.control.test_cli import Pulse, pulse  # noqa: F401  (the fixture)


@pytest.fixture
def crm(pulse: Pulse, monkeypatch: pytest.MonkeyPatch) -> Pulse:  # noqa: F811
    """Two emails of the last days in CRM_FILE: John Smith's (on the roster), a stranger's."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    email = {"direction": "EMAIL", "status": "SENT", "created_at": yesterday.isoformat()}
    path = pulse.file(
        "crm.json",
        {
            "emails": {
                "501": {**email, "owner_id": "1", "owner_email": "jsmith@example.test"},
                "502": {**email, "owner_id": "2", "owner_email": "stranger@example.test"},
            }
        },
    )
    monkeypatch.setenv("CRM_FILE", str(path))
    return pulse


def since() -> str:
    return (datetime.now(UTC) - timedelta(days=3)).date().isoformat()


def test_a_dry_run_lists_what_is_missing_and_writes_no_fact(crm: Pulse) -> None:
    run = crm.run("backfill", "hubspot", "--since", since(), "--dry-run")

    assert run.code == 0, run.err
    assert run.lines[0].startswith(
        "backfill_hubspot: dry_run · 2 found · 1 new · 0 already · 1 gated · 0 ignored"
    )
    assert run.lines[2:] == ["  missing hubspot:email:501 (EMAILS)"]
    assert crm.rows("FactEvent") == []
    assert [(r["action"], r["outcome"]) for r in crm.audit()] == [("backfill_hubspot", "dry_run")]


def test_a_backfill_counts_once_and_a_repeat_adds_nothing(crm: Pulse) -> None:
    first = crm.run("backfill", "hubspot", "--since", since())
    second = crm.run("backfill", "hubspot", "--since", since())

    assert first.code == 0, first.err
    assert first.lines[0].startswith("backfill_hubspot: applied · 2 found · 1 new · 0 already")
    assert second.code == 0, second.err
    assert second.lines[0].startswith("backfill_hubspot: unchanged · 2 found · 0 new · 1 already")
    assert [(r["EventKey"], r["AgentKey"]) for r in crm.rows("FactEvent")] == [
        ("hubspot:email:501", "7")
    ]


def test_a_window_that_ends_before_it_starts_is_one_line_and_exit_2(crm: Pulse) -> None:
    run = crm.run("backfill", "hubspot", "--since", "2025-11-05", "--until", "2025-11-01")

    assert run.code == 2
    assert run.err.strip().splitlines()[-1] == (
        "pulse: --until 2025-11-01 is before --since 2025-11-05"
    )
    assert crm.rows("FactEvent") == []

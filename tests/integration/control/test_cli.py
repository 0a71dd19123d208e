"""`pulse sync|dates|metrics|shifts|admin` as an operator runs them: `bootstrap.main.main(argv)`
with settings from the environment, what it prints, its exit code, and what it leaves in
DATA_DIR (warehouse dimension tables, the control plane's audit)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.bootstrap.main import main
from pulse.bootstrap.settings import Settings
from tests.support.serve import Daemon

ROSTER = [
    {"id": 7, "name": "John Smith", "email": "jsmith@example.test"},
    {"id": "8", "name": "Olga Ruiz", "email": "olga@example.test"},
]
SHIFTS: dict[str, Any] = {
    "version": 1,
    "shifts": [
        {"name": "Day", "start": "08:00", "end": "20:00"},
        {"name": "Night", "start": "20:00", "end": "08:00"},
    ],
}
METRICS_MONTH = datetime.now(UTC).strftime("%Y-%m")  # inside the DimDate window: a change
METRICS: dict[str, Any] = {
    "month": METRICS_MONTH,
    "version": 1,
    "metrics": [{"metricId": "CALLS", "defaultGoal": 50, "yellowFloorPct": 0.7}],
}
DIMENSIONS = ("DimAgent", "DimDate", "DimMetric", "DimShift")
BACK_DAYS, AHEAD_DAYS = 10, 5


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@dataclass
class Pulse:
    """`pulse …` in this process against one DATA_DIR, the environment set by the fixture."""

    home: Path
    capsys: pytest.CaptureFixture[str]
    admin_secret: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def run(self, *argv: str) -> Run:
        self.capsys.readouterr()  # whatever came before is not this command's output
        code = main(list(argv))
        for handler in logging.getLogger().handlers:
            handler.flush()  # the JSON log writer is buffered: its lines belong to this command
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def file(self, name: str, content: Any) -> Path:
        path = self.home / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a warehouse table; none when the table does not exist yet."""
        return _select(self.data_dir / "warehouse.sqlite", f'SELECT * FROM "{table}"')

    def dimension_rows(self) -> dict[str, int]:
        return {t: len(self.rows(t)) for t in DIMENSIONS}

    def audit(self) -> list[dict[str, Any]]:
        return _select(self.data_dir / "control.sqlite", "SELECT * FROM audit ORDER BY seq")


def _select(path: Path, sql: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the machine running the tests (SINK, PORT, ROSTER_*, …) leaks in."""
    names = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in names or key.upper().split("__")[0] in names:
            monkeypatch.delenv(key)


@pytest.fixture
def pulse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Pulse]:
    root = logging.getLogger()
    before = list(root.handlers)
    # `main` installs its JSON log handler on the root logger: give the logger back afterwards.
    monkeypatch.setattr(root, "handlers", list(before))
    monkeypatch.setattr(root, "level", root.level)
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    clean_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no stray `.env` from the repository
    env = Pulse(tmp_path, capsys)
    roster = env.file("roster.json", ROSTER)
    for key, value in {
        "DATA_DIR": str(env.data_dir),
        "ALOWARE_AUTH": "none",
        "HUBSPOT_AUTH": "none",
        "ROSTER_FILE": str(roster),
        "BUSINESS_TIMEZONE": "UTC",
        "DIM_DATE_BACK_DAYS": str(BACK_DAYS),
        "DIM_DATE_AHEAD_DAYS": str(AHEAD_DAYS),
        "ADMIN_HMAC_SECRET": env.admin_secret,
    }.items():
        monkeypatch.setenv(key, value)
    yield env
    for handler in root.handlers:
        if handler not in before:
            handler.close()  # its writer thread stops


# --- sync agents -------------------------------------------------------------------------------


def test_sync_agents_dry_run_shows_the_roster_and_writes_no_row(pulse: Pulse) -> None:
    run = pulse.run("sync", "agents", "--dry-run")

    assert run.code == 0, run.err
    assert run.lines[0].startswith("sync_agents: dry_run · 2 rows · 2 active · 2 added")
    assert sorted(run.lines[1:]) == ["  + 7", "  + 8"]
    assert pulse.dimension_rows() == dict.fromkeys(DIMENSIONS, 0)
    [record] = pulse.audit()
    assert (record["action"], record["outcome"]) == ("sync_agents", "dry_run")
    assert record["who"].startswith("cli:")


def test_sync_agents_replaces_dim_agent_and_keeps_leavers_inactive(pulse: Pulse) -> None:
    run = pulse.run("sync", "agents")

    assert run.code == 0, run.err
    assert run.lines[0].startswith("sync_agents: applied · 2 rows · 2 active · 2 added")
    assert run.lines[0].endswith(" s") and " · v1 · " in run.lines[0]
    agents = {r["AgentKey"]: r for r in pulse.rows("DimAgent")}
    assert {k: (r["AgentName"], r["Email"], r["Active"]) for k, r in agents.items()} == {
        "7": ("John Smith", "jsmith@example.test", 1),
        "8": ("Olga Ruiz", "olga@example.test", 1),
    }

    pulse.file("roster.json", ROSTER[:1])  # Olga left the ring group
    run = pulse.run("sync", "agents")

    assert run.code == 0, run.err
    assert run.lines[0].startswith("sync_agents: applied · 2 rows · 1 active")
    assert " · v2 · " in run.lines[0]
    active = {r["AgentKey"]: r["Active"] for r in pulse.rows("DimAgent")}
    assert active == {"7": 1, "8": 0}
    assert [(r["action"], r["outcome"], r["version"]) for r in pulse.audit()] == [
        ("sync_agents", "applied", 1),
        ("sync_agents", "applied", 2),
    ]


# --- dates extend ------------------------------------------------------------------------------


def test_dates_extend_dry_run_names_the_window_and_what_it_would_push(pulse: Pulse) -> None:
    today = datetime.now(UTC).date()

    run = pulse.run("dates", "extend", "--dry-run")

    assert run.code == 0, run.err
    window = BACK_DAYS + AHEAD_DAYS + 1
    assert run.lines[0].startswith(
        f"extend_dates: dry_run · {window} window · {window} to push · 0 already"
    )
    first, last = today - timedelta(days=BACK_DAYS), today + timedelta(days=AHEAD_DAYS)
    assert run.lines[1] == f"  window {first} … {last} ({window} days)"
    assert pulse.dimension_rows() == dict.fromkeys(DIMENSIONS, 0)
    assert [(r["action"], r["outcome"]) for r in pulse.audit()] == [("extend_dates", "dry_run")]


def test_dates_extend_pushes_the_window_once(pulse: Pulse) -> None:
    today = datetime.now(UTC).date()
    window = BACK_DAYS + AHEAD_DAYS + 1

    first_run = pulse.run("dates", "extend")
    second_run = pulse.run("dates", "extend")

    assert first_run.code == 0, first_run.err
    assert first_run.lines[0].startswith(
        f"extend_dates: applied · {window} window · {window} pushed · 0 already"
    )
    dates = sorted(date.fromisoformat(r["Date"][:10]) for r in pulse.rows("DimDate"))
    assert len(dates) == window
    assert dates[0] == today - timedelta(days=BACK_DAYS)
    assert dates[-1] == today + timedelta(days=AHEAD_DAYS)
    assert second_run.code == 0, second_run.err
    assert second_run.lines[0].startswith(
        f"extend_dates: unchanged · {window} window · 0 pushed · {window} already"
    )
    assert len(pulse.rows("DimDate")) == window


# --- metrics apply -----------------------------------------------------------------------------


def _metric(pulse: Pulse, key: str) -> tuple[float, float, int]:
    row = {r["MetricMonthKey"]: r for r in pulse.rows("DimMetric")}[key]
    return row["DefaultGoal"], row["YellowFloorPct"], row["Version"]


def test_metrics_apply_dry_run_shows_the_change_and_writes_nothing(pulse: Pulse) -> None:
    run = pulse.run("metrics", "apply", str(pulse.file("goals.json", METRICS)), "--dry-run")

    assert run.code == 0, run.err
    assert run.lines[0].startswith("apply_metrics: dry_run")
    assert " · v1 · " in run.lines[0]
    assert (
        f"  ~ {METRICS_MONTH}:CALLS (DefaultGoal: 60.0 → 50.0, YellowFloorPct: 0.8 → 0.7,"
        " Version: 0 → 1)"
    ) in run.lines
    assert pulse.dimension_rows() == dict.fromkeys(DIMENSIONS, 0)


def test_metrics_apply_writes_the_month_and_refuses_a_stale_version(pulse: Pulse) -> None:
    goals = pulse.file("goals.json", METRICS)

    run = pulse.run("metrics", "apply", str(goals))

    assert run.code == 0, run.err
    assert run.lines[0].startswith("apply_metrics: applied")
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (50.0, 0.7, 1)
    assert _metric(pulse, f"{METRICS_MONTH}:TEXTS") == (40.0, 0.8, 0)  # the default, kept

    lower = {**METRICS, "metrics": [{"metricId": "CALLS", "defaultGoal": 1, "yellowFloorPct": 0}]}
    stale = pulse.run("metrics", "apply", str(pulse.file("again.json", lower)))

    assert stale.code == 2 and stale.out == ""
    [line] = stale.err.splitlines()
    assert line.startswith(
        f"pulse: version: 1 is not newer than the applied version 1 of dim_metric:{METRICS_MONTH}"
    )
    assert line.endswith("send version 2 or more")
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (50.0, 0.7, 1)

    newer = {**METRICS, "version": 2}
    newer["metrics"] = [{"metricId": "CALLS", "defaultGoal": 55, "yellowFloorPct": 0.75}]
    run = pulse.run("metrics", "apply", str(pulse.file("v2.json", newer)))

    assert run.code == 0, run.err
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (55.0, 0.75, 2)
    assert [(r["action"], r["outcome"], r["version"]) for r in pulse.audit()] == [
        ("apply_metrics", "applied", 1),
        ("apply_metrics", "stale", 1),
        ("apply_metrics", "applied", 2),
    ]


# --- shifts apply ------------------------------------------------------------------------------


def test_shifts_apply_dry_run_then_apply(pulse: Pulse) -> None:
    rules = pulse.file("shifts.json", SHIFTS)

    dry = pulse.run("shifts", "apply", "--dry-run", str(rules))

    assert dry.code == 0, dry.err
    assert dry.lines[0].startswith(
        "apply_shifts: dry_run · 4 rows · 2 added · 0 removed · 1 changed"
    )
    assert dry.lines[1:] == ["  + DAY", "  + NIGHT", "  ~ ALLDAY (Retired: False → True)"]
    assert pulse.dimension_rows() == dict.fromkeys(DIMENSIONS, 0)

    run = pulse.run("shifts", "apply", str(rules))

    assert run.code == 0, run.err
    assert run.lines[0].startswith("apply_shifts: applied · 4 rows · 2 added")
    shifts = {
        r["ShiftKey"]: (r["ShiftName"], r["StartLocal"], r["EndLocal"])
        for r in pulse.rows("DimShift")
    }
    assert shifts["DAY"][1:] == ("08:00", "20:00")
    assert shifts["NIGHT"][1:] == ("20:00", "08:00")
    assert set(shifts) == {"DAY", "NIGHT", "UNASSIGNED", "ALLDAY"}  # ALLDAY: the SHIFTS default
    assert {r["ShiftKey"] for r in pulse.rows("DimShift") if r["Retired"]} == {"ALLDAY"}
    assert [(r["action"], r["outcome"]) for r in pulse.audit()] == [
        ("apply_shifts", "dry_run"),
        ("apply_shifts", "applied"),
    ]


def test_report_team_shows_only_that_ring_groups_agents(
    pulse: Pulse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RING_GROUP_ID", "8465")
    assert pulse.run("sync", "agents").code == 0  # 7 and 8, in ring group 8465
    assert pulse.run("dates", "extend").code == 0
    assert pulse.run("metrics", "apply", str(pulse.file("metrics.json", METRICS))).code == 0
    today = datetime.now(UTC).date().isoformat()
    conn = sqlite3.connect(pulse.data_dir / "warehouse.sqlite")
    with conn:
        conn.execute("UPDATE DimAgent SET RingGroupId = '8470' WHERE AgentKey = '8'")
    conn.close()

    team = pulse.run("report", "--date", today, "--team", "8470", "--format", "json")
    everyone = pulse.run("report", "--date", today, "--format", "json")

    assert team.code == 0, team.err
    assert {r["AgentKey"] for r in json.loads(team.out)["rows"]} == {"8"}
    assert {r["AgentKey"] for r in json.loads(everyone.out)["rows"]} == {"7", "8"}


def test_check_integrity_lists_facts_whose_row_is_missing_and_exits_non_zero(
    pulse: Pulse,
) -> None:
    assert pulse.run("check", "--integrity").code == 0  # no facts: nothing to miss
    warehouse = pulse.data_dir / "warehouse.sqlite"
    conn = sqlite3.connect(warehouse)
    with conn:
        conn.execute(
            "INSERT INTO FactEvent (EventKey, Source, MetricID, AgentKey, DateKey, ShiftKey,"
            " OccurredAtUtc, OccurredAtLocal, MetricMonthKey) VALUES ('aloware:1', 'aloware',"
            " 'CALLS', '7', 20251105, 'GONE', '2025-11-05T17:00:00+00:00',"
            " '2025-11-05T17:00:00', '2025-11:CALLS')"
        )
    conn.close()

    run = pulse.run("check", "--integrity")

    assert run.code == 1, run.err
    assert run.lines == [
        "  ORPHAN  DimAgent[AgentKey] = '7': 1 fact(s), no row",
        "  ORPHAN  DimDate[DateKey] = '20251105': 1 fact(s), no row",
        "  ORPHAN  DimMetric[MetricMonthKey] = '2025-11:CALLS': 1 fact(s), no row",
        "  ORPHAN  DimShift[ShiftKey] = 'GONE': 1 fact(s), no row",
        "integrity: 4 missing dimension row(s), 4 fact(s) affected",
    ]


# --- bad files ---------------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[str, str | None, str]] = {
    "metrics: not JSON": ("metrics", "{nope", "{file}: not valid JSON"),
    "metrics: negative goal": (
        "metrics",
        json.dumps(
            {
                **METRICS,
                "metrics": [{"metricId": "CALLS", "defaultGoal": -1, "yellowFloorPct": 0.5}],
            }
        ),
        "{file}: metrics[0].defaultGoal: Input should be greater than or equal to 0",
    ),
    "metrics: negative agent goal": (
        "metrics",
        json.dumps({**METRICS, "agents": {"7": {"CALLS": -5}}}),
        "{file}: agents.7.CALLS: Input should be greater than or equal to 0",
    ),
    "metrics: agent goal of no metric": (
        "metrics",
        json.dumps({**METRICS, "agents": {"7": {"CALLZ": 5}}}),
        "{file}: agents.7.CALLZ.[key]: Input should be",
    ),
    "metrics: no month": (
        "metrics",
        json.dumps({k: v for k, v in METRICS.items() if k != "month"}),
        "{file}: month: Field required",
    ),
    "metrics: missing file": ("metrics", None, "{file}: cannot read it (No such file"),
    "shifts: bad time": (
        "shifts",
        json.dumps({"version": 1, "shifts": [{"name": "Day", "start": "8am", "end": "20:00"}]}),
        "{file}: shifts[0].start: '8am' is not a local time as HH:MM",
    ),
    "shifts: gap": (
        "shifts",
        json.dumps({"version": 1, "shifts": [{"name": "Day", "start": "08:00", "end": "12:00"}]}),
        "shifts: Mon 00:00–Mon 08:00 is not covered",
    ),
    "shifts: a directory": ("shifts", "<dir>", "{file}: cannot read it"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_exits_non_zero_with_one_clear_line_and_writes_nothing(
    pulse: Pulse, case: str
) -> None:
    command, content, expected = BAD_FILES[case]
    path = pulse.home / "bad.json"
    if content == "<dir>":
        path.mkdir()
    elif content is not None:
        path.write_text(content)

    run = pulse.run(command, "apply", str(path))

    assert run.code == 2
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("pulse: " + expected.format(file=path)), lines[0]
    assert pulse.dimension_rows() == dict.fromkeys(DIMENSIONS, 0)
    assert pulse.audit() == []


# --- admin call against a running daemon -------------------------------------------------------


@pytest.fixture
def daemon(pulse: Pulse) -> Iterator[Daemon]:
    """`pulse serve` as a subprocess on a free port, with the same DATA_DIR and secret."""
    env = {
        k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ
    }
    env.update(
        DATA_DIR=str(pulse.data_dir),
        HOST="127.0.0.1",
        PORT="0",
        ALOWARE_AUTH="none",
        HUBSPOT_AUTH="none",
        ROSTER_FILE=os.environ["ROSTER_FILE"],
        BUSINESS_TIMEZONE="UTC",
        DIM_DATE_BACK_DAYS=str(BACK_DAYS),
        DIM_DATE_AHEAD_DAYS=str(AHEAD_DAYS),
        ADMIN_HMAC_SECRET=pulse.admin_secret,
        PYTHONUNBUFFERED="1",
    )
    log_path = pulse.home / "serve.log"
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall the daemon
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulse.bootstrap.main", "serve"],
            cwd=pulse.home,  # no stray `.env` from the repository
            env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Daemon(proc, log_path)
    try:
        running.wait_ready()
        yield running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, running.log()
    finally:
        if proc.poll() is None:  # only ours, by handle
            proc.kill()
            proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.slow
def test_admin_call_signs_requests_to_a_running_daemon(
    pulse: Pulse, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = pulse.file("shifts.json", SHIFTS)
    goals = pulse.file("goals.json", {k: v for k, v in METRICS.items() if k != "month"})

    dry = pulse.run(
        "admin",
        "call",
        "put",
        "/admin/dim-shift?dryRun=true",
        "--data",
        str(body),
        "--url",
        daemon.url,
    )

    assert dry.code == 0, dry.err
    answer = json.loads(dry.out)
    assert (answer["action"], answer["outcome"], answer["dryRun"]) == (
        "apply_shifts",
        "dry_run",
        True,
    )
    assert answer["changes"] == ["+ DAY", "+ NIGHT", "~ ALLDAY (Retired: False → True)"]
    assert pulse.rows("DimShift") == []

    applied = pulse.run(
        "admin", "call", "PUT", "/admin/dim-shift", "--data", str(body), "--url", daemon.url + "/"
    )
    assert applied.code == 0, applied.err
    assert json.loads(applied.out)["outcome"] == "applied"
    assert {r["ShiftKey"] for r in pulse.rows("DimShift")} == {
        "ALLDAY",
        "DAY",
        "NIGHT",
        "UNASSIGNED",
    }

    # Without --url: the daemon at HOST:PORT from the settings.
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("PORT", str(daemon.port))
    metrics = pulse.run(
        "admin", "call", "PUT", f"/admin/dim-metric/{METRICS_MONTH}", "--data", str(goals)
    )
    assert metrics.code == 0, metrics.err
    assert json.loads(metrics.out)["outcome"] == "applied"
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (50.0, 0.7, 1)

    audit = pulse.run("admin", "call", "GET", "/admin/audit?limit=50")
    assert audit.code == 0, audit.err
    seen = [(r["who"], r["action"], r["outcome"]) for r in json.loads(audit.out)["records"]]
    for record in (
        ("admin@127.0.0.1", "apply_shifts", "dry_run"),
        ("admin@127.0.0.1", "apply_shifts", "applied"),
        ("admin@127.0.0.1", "apply_metrics", "applied"),
    ):
        assert record in seen
    stored = [(r["who"], r["action"], r["outcome"]) for r in pulse.audit()]
    assert stored.count(("admin@127.0.0.1", "apply_shifts", "applied")) == 1

    # Signed with the wrong secret: refused, audited, nothing written.
    monkeypatch.setenv("ADMIN_HMAC_SECRET", secrets.token_hex(32))
    changed = pulse.file(
        "shifts-v2.json", {"version": 2, "allowUnassigned": True, "shifts": [SHIFTS["shifts"][0]]}
    )
    refused = pulse.run("admin", "call", "PUT", "/admin/dim-shift", "--data", str(changed))
    assert refused.code == 1
    assert json.loads(refused.out)["error"]["code"] == "bad_signature"
    assert {r["ShiftKey"] for r in pulse.rows("DimShift")} == {
        "ALLDAY",
        "DAY",
        "NIGHT",
        "UNASSIGNED",
    }
    assert pulse.audit()[-1]["outcome"] == "rejected: bad_signature"
    assert pulse.audit()[-1]["action"] == "PUT /admin/dim-shift"


@pytest.mark.slow
def test_admin_call_problems_are_one_line_and_non_zero(
    pulse: Pulse, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = pulse.run(
        "admin",
        "call",
        "PUT",
        "/admin/dim-shift",
        "--data",
        str(pulse.home / "nope.json"),
        "--url",
        daemon.url,
    )
    assert missing.code == 2 and missing.out == ""
    assert missing.err.splitlines() == [
        f"pulse: {pulse.home / 'nope.json'}: cannot read it (No such file or directory)"
    ]

    invalid = pulse.run(
        "admin",
        "call",
        "PUT",
        "/admin/dim-shift",
        "--data",
        str(pulse.file("bad.json", {"version": 0, "shifts": []})),
        "--url",
        daemon.url,
    )
    assert invalid.code == 1
    error = json.loads(invalid.out)["error"]
    assert error["code"] == "invalid" and "version" in error["message"]
    assert pulse.rows("DimShift") == []

    nobody = f"http://127.0.0.1:{_free_port()}"
    gone = pulse.run("admin", "call", "GET", "/admin/status", "--url", nobody)
    assert gone.code == 1 and gone.out == ""
    assert gone.err.splitlines() == [f"pulse: cannot reach {nobody}: ConnectError"]

    monkeypatch.delenv("ADMIN_HMAC_SECRET")
    unsigned = pulse.run("admin", "call", "GET", "/admin/status", "--url", daemon.url)
    assert unsigned.code == 2
    assert unsigned.err.splitlines() == ["pulse: ADMIN_HMAC_SECRET is not set; cannot sign"]


# --- history and rollback ----------------------------------------------------------------------


def _goals(version: int, calls: float) -> dict[str, Any]:
    return {
        **METRICS,
        "version": version,
        "metrics": [{"metricId": "CALLS", "defaultGoal": calls, "yellowFloorPct": 0.7}],
    }


def test_the_same_goals_file_applied_again_is_unchanged_and_exits_0(pulse: Pulse) -> None:
    goals = str(pulse.file("goals.json", METRICS))
    rules = str(pulse.file("shifts.json", SHIFTS))
    assert pulse.run("metrics", "apply", goals).code == 0
    assert pulse.run("shifts", "apply", rules).code == 0

    metrics = pulse.run("metrics", "apply", goals)
    shifts = pulse.run("shifts", "apply", rules)

    assert (metrics.code, metrics.err) == (0, "")
    assert metrics.lines[0].startswith("apply_metrics: unchanged · 0 added · 0 removed")
    assert metrics.lines[1].startswith("  v1 is the applied version (applied ")
    assert (shifts.code, shifts.lines[0].split(" · ")[0]) == (0, "apply_shifts: unchanged")
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (50.0, 0.7, 1)
    assert [(r["action"], r["outcome"]) for r in pulse.audit()][-2:] == [
        ("apply_metrics", "unchanged"),
        ("apply_shifts", "unchanged"),
    ]


def test_a_wrong_goals_file_is_undone_by_rolling_back_to_the_version_before(pulse: Pulse) -> None:
    assert pulse.run("metrics", "apply", str(pulse.file("v1.json", _goals(1, 50)))).code == 0
    assert pulse.run("metrics", "apply", str(pulse.file("v2.json", _goals(2, 5)))).code == 0

    listed = pulse.run("metrics", "history", METRICS_MONTH)

    assert listed.code == 0, listed.err
    assert listed.lines[0] == f"dim_metric:{METRICS_MONTH}: 2 version(s)"
    hashes = [r["payload_hash"] for r in pulse.audit()]
    for line, version in zip(listed.lines[1:], (1, 2), strict=True):
        assert line.startswith(f"  v{version}  20") and " cli:" in line
        assert line.split()[3] == hashes[version - 1][:19]
        assert " rows · " in line and " changed" in line
    assert listed.lines[-1].endswith("(applied)") and not listed.lines[1].endswith("(applied)")

    dry = pulse.run("metrics", "rollback", METRICS_MONTH, "--to", "1", "--dry-run")

    assert dry.code == 0, dry.err
    assert dry.lines[0].startswith("rollback_metrics: dry_run") and " · v3 · " in dry.lines[0]
    assert dry.lines[1] == "  v1 applied again as v3"
    assert f"  ~ {METRICS_MONTH}:CALLS (DefaultGoal: 5.0 → 50.0, Version: 2 → 3)" in dry.lines
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (5.0, 0.7, 2)

    rolled = pulse.run("metrics", "rollback", METRICS_MONTH, "--to", "1")

    assert rolled.code == 0, rolled.err
    assert rolled.lines[0].startswith("rollback_metrics: applied") and " · v3 · " in rolled.lines[0]
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (50.0, 0.7, 3)
    listed = pulse.run("metrics", "history", METRICS_MONTH)
    assert len(listed.lines) == 4 and "restores v1  (applied)" in listed.lines[-1]
    assert [(r["action"], r["outcome"], r["version"]) for r in pulse.audit()][-2:] == [
        ("rollback_metrics", "dry_run", 3),
        ("rollback_metrics", "applied", 3),
    ]


def test_shift_rules_roll_back_and_an_unknown_version_is_one_clear_line(pulse: Pulse) -> None:
    assert pulse.run("shifts", "history").lines == ["dim_shift: no version applied yet"]
    assert pulse.run("shifts", "apply", str(pulse.file("s1.json", SHIFTS))).code == 0
    later = {
        "version": 2,
        "shifts": [
            {"name": "Day", "start": "09:00", "end": "21:00"},
            {"name": "Night", "start": "21:00", "end": "09:00"},
        ],
    }
    assert pulse.run("shifts", "apply", str(pulse.file("s2.json", later))).code == 0

    unknown = pulse.run("shifts", "rollback", "--to", "7")
    rolled = pulse.run("shifts", "rollback", "--to", "1")

    assert (unknown.code, unknown.out) == (2, "")
    assert unknown.err.splitlines() == [
        "pulse: dim_shift has no version 7: its versions are v1, v2"
    ]
    assert rolled.code == 0, rolled.err
    assert rolled.lines[0].startswith("rollback_shifts: applied") and " · v3 · " in rolled.lines[0]
    shifts = {r["ShiftKey"]: (r["StartLocal"], r["EndLocal"]) for r in pulse.rows("DimShift")}
    assert (shifts["DAY"], shifts["NIGHT"]) == (("08:00", "20:00"), ("20:00", "08:00"))
    assert len(pulse.run("shifts", "history").lines) == 4


def test_history_of_a_month_that_is_no_month_exits_2(pulse: Pulse) -> None:
    run = pulse.run("metrics", "history", "2026-13")
    assert (run.code, run.err.splitlines()) == (
        2,
        ["pulse: month: '2026-13' is not a month as YYYY-MM"],
    )


@pytest.mark.slow
def test_a_running_daemon_takes_the_apply_file_lists_versions_and_rolls_back(
    pulse: Pulse, daemon: Daemon
) -> None:
    month = f"/admin/dim-metric/{METRICS_MONTH}"
    v1 = str(pulse.file("v1.json", _goals(1, 50)))  # the file `pulse metrics apply` takes
    v2 = str(pulse.file("v2.json", _goals(2, 5)))
    to = str(pulse.file("to.json", {"to": 1}))

    def admin(method: str, path: str, data: str | None = None) -> dict[str, Any]:
        run = pulse.run(
            "admin", "call", method, path, *(("--data", data) if data else ()), "--url", daemon.url
        )
        assert run.code == 0, run.out + run.err
        answer: dict[str, Any] = json.loads(run.out)
        return answer

    assert admin("PUT", month, v1)["outcome"] == "applied"
    assert admin("PUT", month, v1)["outcome"] == "unchanged"
    assert admin("PUT", month, v2)["outcome"] == "applied"
    listed = admin("GET", f"{month}/versions")["versions"]
    assert [(v["version"], v["appliedBy"]) for v in listed] == [
        (1, "admin@127.0.0.1"),
        (2, "admin@127.0.0.1"),
    ]

    rolled = admin("POST", f"{month}/rollback", to)

    assert (rolled["action"], rolled["outcome"], rolled["version"]) == (
        "rollback_metrics",
        "applied",
        3,
    )
    assert _metric(pulse, f"{METRICS_MONTH}:CALLS") == (50.0, 0.7, 3)
    history = pulse.run("metrics", "history", METRICS_MONTH)
    assert history.lines[-1].endswith("restores v1  (applied)")


# --- incidents (issue 13 §1) ---------------------------------------------------------------------


def _open_incident(data_dir: Path, signature: str) -> str:
    """An open incident in the control store, as a running daemon would have left it."""
    import asyncio

    from pulse.adapters_out.sqlite.control import open_control_db
    from pulse.adapters_out.sqlite.incidents import SqliteIncidentStore
    from pulse.core import incidents
    from pulse.core.incidents import IncidentRules

    async def seed() -> str:
        db = open_control_db(data_dir / "control.sqlite")
        try:
            store = SqliteIncidentStore(db)
            now = datetime.now(UTC)
            opened = await incidents.record(store, signature, 5, "429", now, IncidentRules())
            assert opened is not None
            return opened.incident.id
        finally:
            await db.close()

    return asyncio.run(seed())


def test_incidents_list_shows_them_and_ack_resolve_resolves_one(pulse: Pulse) -> None:
    incident_id = _open_incident(pulse.data_dir, "powerbi:429")

    listed = pulse.run("incidents", "list")
    assert listed.code == 0 and "1 incident(s)" in listed.out
    assert incident_id in listed.out and "open" in listed.out and "powerbi:429" in listed.out

    acked = pulse.run("incidents", "ack", incident_id, "--resolve", "--who", "alice")
    assert acked.code == 0 and "resolved" in acked.out and "acked by alice" in acked.out

    shown = json.loads(pulse.run("incidents", "list", "--format", "json").out)
    (incident,) = shown["incidents"]
    assert (incident["state"], incident["resolvedBy"]) == ("resolved", "operator:alice")
    assert pulse.run("incidents", "list", "--state", "open").lines == ["0 incident(s)"]


def test_acking_an_unknown_incident_says_so_and_exits_non_zero(pulse: Pulse) -> None:
    run = pulse.run("incidents", "ack", "no-such-incident")
    assert run.code == 1 and "no incident 'no-such-incident'" in run.err

"""A CLI that works from anywhere: `--env-file PATH` or PULSE_ENV_FILE name the settings, a
relative DATA_DIR is relative to that file's folder, and the read-only commands need no
webhook secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import clean_env, pulse, webhook_secrets, write_env_file

pytestmark = pytest.mark.slow  # each test starts a few `pulse` processes


@pytest.fixture
def project(tmp_path: Path) -> Path:
    home = tmp_path / "project"
    home.mkdir()
    write_env_file(home / ".env", {**webhook_secrets(), "DATA_DIR": "data", "ROSTER_AGENTS": "42"})
    return home


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_env_file_from_another_folder_reads_the_project_data_dir(
    project: Path, elsewhere: Path
) -> None:
    synced = pulse(["--env-file", str(project / ".env"), "sync", "agents"], cwd=elsewhere)
    assert synced.returncode == 0, synced.stderr
    assert (project / "data" / "control.sqlite").exists()
    assert not (elsewhere / "data").exists()

    report = pulse(
        ["--env-file", str(project / ".env"), "report", "--date", "2025-11-05"], cwd=elsewhere
    )
    assert report.returncode == 0, report.stderr
    assert report.stdout == "No activity or agents for 2025-11-05.\n"

    relative = pulse(["--env-file", "../project/.env", "shifts", "history"], cwd=elsewhere)
    assert relative.returncode == 0, relative.stderr
    assert not (elsewhere / "data").exists()


def test_pulse_env_file_names_the_settings_too(project: Path, elsewhere: Path) -> None:
    env = clean_env(PULSE_ENV_FILE=str(project / ".env"))
    done = pulse(["check"], cwd=elsewhere, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"DATA_DIR = {project / 'data'}" in done.stdout
    assert not (elsewhere / "data").exists()


def test_an_env_file_that_is_not_there_is_one_line(elsewhere: Path) -> None:
    done = pulse(["--env-file", "nope.env", "check"], cwd=elsewhere)
    assert done.returncode == 2
    assert "--env-file: nope.env is not a file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--date", "2025-11-05"],
        ["check"],
        ["dead-letters", "list"],
        ["shifts", "history"],
        ["metrics", "history", "2025-11"],
    ],
)
def test_read_only_commands_need_no_webhook_secret(elsewhere: Path, argv: list[str]) -> None:
    (elsewhere / "data").mkdir()
    done = pulse(argv, cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ALOWARE_SECRET" not in done.stderr


def test_a_command_that_writes_still_needs_the_webhook_secrets(elsewhere: Path) -> None:
    done = pulse(["dates", "extend", "--dry-run"], cwd=elsewhere)
    assert done.returncode == 2
    assert "ALOWARE_SECRET is not set" in done.stderr


def test_a_read_from_a_folder_with_no_data_dir_says_so_instead_of_reading_nothing(
    elsewhere: Path,
) -> None:
    write_env_file(elsewhere / ".env", webhook_secrets())  # a copied .env, DATA_DIR=data
    done = pulse(["report", "--date", "2025-11-05"], cwd=elsewhere)
    assert done.returncode == 2
    assert f"DATA_DIR {elsewhere / 'data'} does not exist: nothing to read" in done.stderr
    assert "--env-file PATH or PULSE_ENV_FILE" in done.stderr
    assert not (elsewhere / "data").exists()

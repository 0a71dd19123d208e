"""The command line's small edges, as an operator meets them: a subprocess in an empty folder."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pulse.adapters_in.cli.main import build_parser
from pulse.bootstrap.logs import setup_logging
from tests.support.cli import clean_env, pulse, webhook_secrets, write_env_file


@pytest.mark.slow
def test_pulse_version_names_the_installed_version(tmp_path: Path) -> None:
    done = pulse(["--version"], cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == f"pulse {metadata.version('pulse-etl')}\n"


@pytest.mark.slow
def test_bare_pulse_prints_the_help(tmp_path: Path) -> None:
    done = pulse([], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pulse") and "report" in done.stdout


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {"": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                for path, grandchild in _commands(child).items():
                    found[f"{name} {path}".strip()] = grandchild
    return found


def test_every_argument_has_help_text() -> None:
    missing = [
        (command, action.dest)
        for command, parser in _commands(build_parser()).items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_the_dataset_help_names_every_sink() -> None:
    text = _commands(build_parser())["dataset"].description or ""
    for sink in ("powerbi", "fabric-eventhouse", "fabric-eventstream", "local"):
        assert sink in text, sink


@pytest.mark.slow
def test_a_date_that_is_not_one_is_named_in_one_line(tmp_path: Path) -> None:
    done = pulse(["report", "--date", "2025-13-40"], cwd=tmp_path)
    assert done.returncode == 2
    assert "--date: 2025-13-40 is not a date (YYYY-MM-DD)" in done.stderr
    assert "fromisoformat" not in done.stderr


@pytest.mark.slow
def test_output_to_an_ascii_terminal_does_not_crash(tmp_path: Path) -> None:
    write_env_file(tmp_path / ".env", webhook_secrets())
    (tmp_path / "data").mkdir()
    env = clean_env(PYTHONIOENCODING="ascii")
    for argv in (["report", "--date", "2025-11-05"], ["dates", "extend", "--dry-run"]):
        done = pulse(argv, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "UnicodeEncodeError" not in done.stderr
    assert "extend_dates: dry_run ? " in done.stdout  # the · an ascii terminal cannot show


def test_httpx_request_lines_stay_off_stderr_at_info() -> None:
    setup_logging("INFO")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("pulse").isEnabledFor(logging.INFO)


@pytest.mark.slow
def test_output_piped_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    write_env_file(tmp_path / ".env", webhook_secrets())
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse.bootstrap.main", "check", "--all"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # what `| head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err

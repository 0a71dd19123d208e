"""A setting Pulse does not know is reported (a typo is otherwise silently the default), and
`pulse check` prints what the configured mode reads (`--all`: everything)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pulse.adapters_in.cli.main import print_settings
from pulse.bootstrap.settings import load_settings, setting_fields, unknown_settings
from tests.support.cli import clean_env, pulse, webhook_secrets, write_env_file

OPEN = {"aloware_auth": "none", "hubspot_auth": "none"}


@pytest.fixture(autouse=True)
def _in_empty_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def test_a_typo_in_the_env_file_is_named_with_the_setting_it_resembles(tmp_path: Path) -> None:
    write_env_file(tmp_path / ".env", {"BUSINES_TIMEZONE": "America/New_York", "HOST": "::"})
    assert unknown_settings(None, {}) == [
        "unknown setting BUSINES_TIMEZONE — did you mean BUSINESS_TIMEZONE?"
    ]


def test_any_key_of_the_env_file_pulse_does_not_read_is_reported(tmp_path: Path) -> None:
    write_env_file(tmp_path / "pulse.env", {"FLUX_CAPACITOR": "1", "SHIFTS__0__NAME": "Day"})
    assert unknown_settings(tmp_path / "pulse.env", {}) == ["unknown setting FLUX_CAPACITOR"]


def test_nested_settings_are_known_and_a_nested_typo_is_not() -> None:
    environ = {"POWERBI__TENANT_ID": "t", "GOALS__CALLS": "60", "FABRIC__QUERYURI": "x"}
    assert unknown_settings(None, environ) == [
        "unknown setting FABRIC__QUERYURI — did you mean FABRIC__QUERY_URI?"
    ]


def test_unrelated_environment_variables_are_left_alone() -> None:
    environ = {
        name: "x"
        for name in (
            "PATH", "HOME", "HOSTNAME", "USER", "SHELL", "LANG", "TERM", "PWD", "TMPDIR",
            "PYTHONPATH", "VIRTUAL_ENV", "AWS_PROFILE", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL_SQS", "AWS_ACCESS_KEY_ID", "PULSE_ENV_FILE", "port",
        )
    }  # fmt: skip
    assert unknown_settings(None, environ) == []
    assert unknown_settings(None, {"WORKRES": "4"}) == [
        "unknown setting WORKRES — did you mean WORKERS?"
    ]


def test_every_field_is_a_variable_once() -> None:
    names = [name for name, _ in setting_fields()]
    assert len(names) == len(set(names))
    assert {"POWERBI__TENANT_ID", "GOALS__CALLS", "SHIFTS", "BUSINESS_TIMEZONE"} <= set(names)


def _shown(capsys: pytest.CaptureFixture[str], *, show_all: bool = False, **values: object) -> str:
    print_settings(load_settings(**OPEN, **values), show_all=show_all)  # type: ignore[arg-type]
    return capsys.readouterr().out


def test_check_prints_what_the_embedded_mode_reads(capsys: pytest.CaptureFixture[str]) -> None:
    out = _shown(capsys)
    assert "INBOX=sqlite LEDGER=sqlite SINK=local ROSTER=static CRM=static" in out
    assert "DATA_DIR = " in out and "ROSTER_AGENTS = " in out
    for absent in ("POWERBI__", "FABRIC__", "SQS_", "DYNAMO_", "AWS_", "ALOWARE_API_TOKEN"):
        assert f"  {absent}" not in out, absent
    everything = _shown(capsys, show_all=True)
    assert "  POWERBI__TENANT_ID = " in everything and "  SQS_QUEUE = " in everything


def test_check_prints_the_configured_sink_and_stores_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _shown(
        capsys,
        sink="powerbi",
        ledger="dynamodb",
        powerbi={
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": secrets.token_urlsafe(16),
            "workspace_id": "w",
        },
    )
    assert "  POWERBI__WORKSPACE_ID = w" in out and "  DYNAMO_TABLE = " in out
    assert "  AWS_REGION = " in out
    assert "  FABRIC__" not in out and "  SQS_QUEUE" not in out and "  LEDGER_TTL_DAYS" not in out


@pytest.mark.slow
def test_pulse_check_fails_on_an_unknown_setting_and_other_commands_warn(tmp_path: Path) -> None:
    write_env_file(tmp_path / ".env", {**webhook_secrets(), "BUSINES_TIMEZONE": "America/Chicago"})
    line = "unknown setting BUSINES_TIMEZONE — did you mean BUSINESS_TIMEZONE?"

    check = pulse(["check"], cwd=tmp_path)
    assert check.returncode == 1
    assert f"  ERROR  {line}" in check.stdout

    report = pulse(["report", "--date", "2025-11-05"], cwd=tmp_path, env=clean_env(BATCH_SIZ="5"))
    assert report.returncode == 0, report.stderr
    assert f"pulse: warning: {line}" in report.stderr
    assert "pulse: warning: unknown setting BATCH_SIZ — did you mean BATCH_SIZE?" in report.stderr

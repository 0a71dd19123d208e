"""Settings as people write them: lists comma-separated or JSON, and a bad value is one line that
names the variable and echoes what was written (never a secret)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pulse.bootstrap.settings import SettingsError, load_settings
from tests.support.cli import clean_env, pulse, webhook_secrets, write_env_file

OPEN = {"ALOWARE_AUTH": "none", "HUBSPOT_AUTH": "none"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ROSTER_AGENTS", "ADMIN_IP_ALLOWLIST", "TRUSTED_PROXIES", "SHIFTS", "PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in OPEN.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("name", "written", "expected"),
    [
        ("ROSTER_AGENTS", "42,43", ["42", "43"]),
        ("ROSTER_AGENTS", "42", ["42"]),
        ("ROSTER_AGENTS", " 42 , 43, ", ["42", "43"]),
        ("ROSTER_AGENTS", '["42", "43"]', ["42", "43"]),
        ("ADMIN_IP_ALLOWLIST", "10.0.0.0/8", ["10.0.0.0/8"]),
        ("ADMIN_IP_ALLOWLIST", "10.0.0.0/8,192.168.1.0/24", ["10.0.0.0/8", "192.168.1.0/24"]),
        ("TRUSTED_PROXIES", "10.0.0.1", ["10.0.0.1"]),
        ("TRUSTED_PROXIES", '["10.0.0.1"]', ["10.0.0.1"]),
    ],
)
def test_a_list_setting_takes_comma_separated_values_or_json(
    monkeypatch: pytest.MonkeyPatch, name: str, written: str, expected: list[str]
) -> None:
    monkeypatch.setenv(name, written)
    assert getattr(load_settings(), name.lower()) == expected


def test_a_list_in_the_env_file_is_read_the_same_way(tmp_path: Path) -> None:
    write_env_file(tmp_path / ".env", {"ROSTER_AGENTS": "42,43", "TRUSTED_PROXIES": "10.0.0.1"})
    settings = load_settings()
    assert settings.roster_agents == ["42", "43"]
    assert settings.trusted_proxies == ["10.0.0.1"]


def test_shifts_are_json_and_a_bad_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTS", '{"name": "Day", "start": "08:00", "end": "17:00"}')
    assert [s.name for s in load_settings().shifts] == ["Day"]
    monkeypatch.setenv("SHIFTS", "day")
    with pytest.raises(SettingsError, match=r"^SHIFTS=day: not JSON"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "written", "line"),
    [
        ("PORT", "abc", "PORT=abc: Input should be a valid integer"),
        ("ROSTER_AGENTS", "[42,", "ROSTER_AGENTS=[42,: not a JSON list"),
        ("SINK", "powerbee", "SINK=powerbee: Input should be"),
        ("GOALS__CALLS", "many", "GOALS__CALLS=many: Input should be a valid number"),
        ("GOALS", "{calls", "GOALS: not valid JSON"),
    ],
)
def test_a_value_that_does_not_parse_is_one_line_naming_the_variable_and_echoing_it(
    monkeypatch: pytest.MonkeyPatch, name: str, written: str, line: str
) -> None:
    monkeypatch.setenv(name, written)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(line)
    assert len(str(err.value).splitlines()) == 1


def test_a_bad_secret_is_named_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_urlsafe(12)
    monkeypatch.setenv("POWERBI__CLIENT_SECRET", secret)
    monkeypatch.setenv("POWERBI__TIMEOUT_SEC", "soon")
    with pytest.raises(SettingsError) as err:
        load_settings(admin_hmac_secret=["not", secret])
    assert "ADMIN_HMAC_SECRET=***" in str(err.value)
    assert "POWERBI__TIMEOUT_SEC=soon" in str(err.value)
    assert secret not in str(err.value)


@pytest.mark.slow
def test_pulse_check_reads_comma_separated_lists_from_the_env_file(tmp_path: Path) -> None:
    dotenv = {**webhook_secrets(), "ROSTER_AGENTS": "42,43", "ADMIN_IP_ALLOWLIST": "10.0.0.0/8"}
    write_env_file(tmp_path / ".env", dotenv)
    done = pulse(["check"], cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert "ROSTER_AGENTS = ['42', '43']" in done.stdout, done.stdout
    assert "ADMIN_IP_ALLOWLIST = ['10.0.0.0/8']" in done.stdout


@pytest.mark.slow
def test_pulse_check_with_an_unparsable_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = pulse(["check"], cwd=tmp_path, env=clean_env(**webhook_secrets(), PORT="abc"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "PORT=abc: Input should be a valid integer" in done.stderr

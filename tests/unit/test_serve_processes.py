"""`pulse serve --processes N` is EDGE_PROCESSES=N for that run; the setting is bounded."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pulse.adapters_in.cli.main import build_parser
from pulse.bootstrap.main import settings_for
from pulse.bootstrap.settings import SettingsError


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("ALOWARE_SECRET", secrets.token_hex(16))
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", secrets.token_hex(16))


def test_the_flag_overrides_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_PROCESSES", "2")
    parser = build_parser()
    assert settings_for(parser.parse_args(["serve"]), None).edge_processes == 2
    assert settings_for(parser.parse_args(["serve", "--processes", "4"]), None).edge_processes == 4


@pytest.mark.parametrize("processes", ["0", "65"])
def test_out_of_bounds_is_a_configuration_error(processes: str) -> None:
    with pytest.raises(SettingsError, match="EDGE_PROCESSES"):
        settings_for(build_parser().parse_args(["serve", "--processes", processes]), None)
